"""Helpers to drive a Simulator on a VirtualClock (no test_ prefix: not collected)."""

from __future__ import annotations

from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.fleet import FleetSpec, VMSpec
from simulator.machine import Outcome
from simulator.taps import ConsoleTap
from vmws.backend import Action, VMInfo, VMStatus


def small_fleet() -> FleetSpec:
    return FleetSpec(
        vms=(
            VMSpec("run-a"),
            VMSpec("run-b"),
            VMSpec("off-a", status=VMStatus.STOPPED),
            VMSpec("paused-a", status=VMStatus.PAUSED),
            VMSpec("saved-a", status=VMStatus.SUSPENDED),
            VMSpec("broken-a", status=VMStatus.ERROR),
        )
    )


class Run:
    """A simulator on a virtual clock, with every event and completion recorded."""

    def __init__(self, seed: int = 0, fleet: FleetSpec | None = None) -> None:
        self.clock = VirtualClock()
        self.sim = Simulator(self.clock, fleet or small_fleet(), seed=seed)
        self.events: list[VMInfo] = []
        self.sim.subscribe(self.events.append)

    def outcome(self, name: str, action: Action, force: bool = False, within: float = 10.0) -> Outcome:
        """Run ``action`` to its outcome, advancing the clock in small steps."""
        results: list[Outcome] = []
        self.sim.perform(name, action, force=force, done=results.append)
        waited = 0.0
        while not results:
            assert waited < within, f"{action.value} of {name} did not finish in {within} s"
            self.clock.advance(0.01)
            waited += 0.01
        return results[0]

    def perform(self, name: str, action: Action, force: bool = False, within: float = 10.0) -> VMInfo:
        """Run ``action`` to completion; its error, if any, is raised."""
        outcome = self.outcome(name, action, force, within)
        if not isinstance(outcome, VMInfo):
            raise outcome
        return outcome

    def tap(self, name: str) -> ConsoleTap:
        return self.sim.open_console(name, lambda: None)


def drain(tap: ConsoleTap) -> bytes:
    out = bytearray()
    while chunk := tap.read():
        out += chunk
    return bytes(out)
