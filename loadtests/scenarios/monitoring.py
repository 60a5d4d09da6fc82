"""Scenario ``monitoring``: many watchers per VM; metrics delivery lag and command churn.

Watchers (``--vmws-command-share`` of users are operators instead) watch a VM and
report every metrics message's delivery lag (``metrics lag``: now − its timestamp).
Operators also watch and send commands: ``pause`` then ``resume`` (every watcher of
the VM sees two status changes) and ``start`` on a running VM (a no-op that must
succeed), each timed to its response (``command ACTION``). ``loadtests.run`` starts
the server with metrics every second.
"""

from __future__ import annotations

from locust import between, task

from loadtests.users import VMWSUser


class Watcher(VMWSUser):
    wait_time = between(5.0, 10.0)
    permissions: tuple[str, ...] = ("read",)

    def on_start(self) -> None:
        if self._is_operator():
            self.permissions = ("read", "control")
        self.connect("monitor").report_metrics = True

    def _is_operator(self) -> bool:
        share = float(self.options.vmws_command_share)
        return share > 0 and self.number % max(1, round(1 / share)) == 0

    @task
    def work(self) -> None:
        if not self._is_operator():
            return  # a watcher only receives
        assert self.connection is not None
        self.connection.command("pause")
        self.connection.command("resume")
        self.connection.command("start")
