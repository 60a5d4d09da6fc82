"""``python -m loadtests.bench``: vmws beside its baselines, six targets, one run.

Each benchmark starts vmws (``vmws serve`` on the simulator) and the matching
baseline (``loadtests.baseline``) pinned to CPU 0, drives both from this process
pinned to CPU 1 with the lean client (``loadtests.wsclient``), alternating rounds so
both see the same machine, and compares medians:

1. ``console_flood``: one console flood, MB/s, against the stdlib-json relay.
2. ``console_echo``: 1,000 consoles × 5 keys/s: p99 keystroke→echo and CPU.
3. ``idle_10k``: 10,000 console viewers of idle VMs held: memory per connection.
4. ``broadcast_1k``: 1,000 watchers of one VM: p99 metrics delivery lag.
5. ``seq_flood``: the simulator's ``seq`` output against its ``yes``, console MB/s.
6. ``console_echo_saturation``: the most consoles × 5 keys/s held with p99 ≤ 50 ms.

vmws runs on each event loop (``--loop``); every figure comes with the load
generator's CPU, and a round where it used over 80 % of its core is not counted.
"""
