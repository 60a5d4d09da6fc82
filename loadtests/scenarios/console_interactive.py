"""Scenario ``console_interactive``: people typing at human speed; echo latency.

Each user logs into its own VM's console and types ``echo vmws load test`` one key
at a time (a key every 0.1–0.4 s), timing each key to its echo (``console echo``),
then Enter to the next prompt (``console line``).
"""

from __future__ import annotations

import random
import time

import gevent
from locust import constant, task

from loadtests.users import REQUEST_TYPE, ConsoleSession, VMWSUser

LINE = "echo vmws load test"


class Typist(VMWSUser):
    wait_time = constant(0.2)

    def on_start(self) -> None:
        self.session = ConsoleSession(self.connect("console"))
        self.session.login()

    def _fire(self, name: str, started: float, exception: BaseException | None = None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    @task
    def type_a_line(self) -> None:
        session = self.session
        for key in LINE:
            session.mark()
            started = time.perf_counter()
            try:
                session.type(key)
                session.expect(key, timeout=10)
            except Exception as exc:
                self._fire("console echo", started, exc)
                return
            self._fire("console echo", started)
            gevent.sleep(self._think())
        session.mark()
        started = time.perf_counter()
        try:
            session.type("\r")
            session.expect("load test\r\n", timeout=10)
            session.expect("$ ", timeout=10)
        except Exception as exc:
            self._fire("console line", started, exc)
            return
        self._fire("console line", started, length=len(session.text))

    def _think(self) -> float:
        # human typing: 0.1-0.4 s between keys, mean 0.25 s (4 keys/s)
        return random.uniform(0.1, 0.4)
