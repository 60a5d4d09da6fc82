"""Load tests and benchmarks for vmws.

``loadtests.run`` runs one Locust scenario (``loadtests/scenarios/``) headless against
a ``vmws serve`` it starts itself; ``loadtests.capacity`` steps the user count up until
a limit breaks and writes a report; ``loadtests.bench`` compares vmws with minimal
Tornado baselines (``loadtests.baseline``) using a lean asyncio client
(``loadtests.wsclient``). See ``docs/performance.md``.
"""
