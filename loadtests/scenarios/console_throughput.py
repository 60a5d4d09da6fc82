"""Scenario ``console_throughput``: viewers running a flood command, measured in bytes/s.

Each user logs into its own VM's console and runs ``seq N`` (``--vmws-flood``) over
and over. ``console bytes`` events carry every console message's size (Locust's
content size × RPS is the throughput) and its delivery lag; ``console line`` times
each flood from Enter to the next prompt. ``seq`` ends by itself, so a viewer never
holds more unread output than one flood (vmws closes viewers past 4 MiB behind).
"""

from __future__ import annotations

import time

from locust import constant, task

from loadtests.users import REQUEST_TYPE, ConsoleSession, VMWSUser


class FloodViewer(VMWSUser):
    wait_time = constant(0.5)

    def on_start(self) -> None:
        self.session = ConsoleSession(self.connect("console"), report_bytes=True)
        self.session.login()

    @task
    def flood(self) -> None:
        session = self.session
        session.mark()
        before = session.received
        started = time.perf_counter()
        exception = None
        try:
            session.type(f"seq {int(self.options.vmws_flood)}\r")
            session.expect(f"\r\n{int(self.options.vmws_flood)}\r\n", timeout=120)
            session.expect("$ ", timeout=30)
        except Exception as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name="console line",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=session.received - before,
            exception=exception,
            context={},
        )
