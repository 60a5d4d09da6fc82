"""Scenario ``heartbeat``: many mostly idle connections with a short heartbeat interval.

Each user watches a VM (many users per VM) and does nothing but heartbeats: every
few seconds it sends one and times the echo (``heartbeat rtt``). Meanwhile every
connection checks that the server's own heartbeats keep coming (``missed heartbeat``
failures) and that the server does not close it (``dropped`` failures). ``loadtests.run``
starts the server with a 2 s heartbeat interval and metrics only once a minute.
"""

from __future__ import annotations

from locust import between, task

from loadtests.users import VMWSUser


class IdleWatcher(VMWSUser):
    wait_time = between(2.0, 6.0)
    permissions: tuple[str, ...] = ("read",)

    def on_start(self) -> None:
        self.connect("monitor")

    @task
    def heartbeat(self) -> None:
        assert self.connection is not None
        self.connection.heartbeat()
