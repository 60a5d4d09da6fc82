"""The simulated fleet: a set of machines sharing one clock and one seeded generator.

This is the sans-I/O face of the simulator: plain method calls and callbacks, no
asyncio. ``vmws.backends.simulator`` adapts it to the async ``Backend`` interface;
tests drive it directly on a ``VirtualClock``. Given the same fleet, seed and inputs
at the same clock times, it produces the same events and console bytes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from simulator.fleet import FleetSpec, demo_fleet
from simulator.machine import ConsoleTap, Done, Machine
from vmws.backend import Action, MetricsSample, StatusListener, VMInfo
from vmws.clock import Clock
from vmws.errors import VMNotFound

__all__ = ["Simulator"]

log = logging.getLogger(__name__)


class Simulator:
    def __init__(self, clock: Clock, fleet: FleetSpec | None = None, *, seed: int = 0) -> None:
        self.clock = clock
        self._rng = random.Random(seed)
        salt = self._rng.getrandbits(64)
        self._listeners: list[StatusListener] = []
        specs = sorted((fleet or demo_fleet()).vms, key=lambda vm: vm.name)
        self._machines = {
            spec.name: Machine(spec, clock, self._rng, salt, self._notify) for spec in specs
        }

    def _machine(self, name: str) -> Machine:
        try:
            return self._machines[name]
        except KeyError:
            raise VMNotFound(f"no VM named {name!r}") from None

    def _notify(self, info: VMInfo) -> None:
        for listener in list(self._listeners):
            try:
                listener(info)
            except Exception:
                # one broken watcher must not stop the VM's transition or the others
                log.exception("status listener failed for %s", info.name)

    # Public methods

    def names(self) -> list[str]:
        return list(self._machines)

    def list(self) -> list[VMInfo]:
        return [m.info() for m in self._machines.values()]

    def info(self, name: str) -> VMInfo:
        return self._machine(name).info()

    def sample(self, name: str) -> MetricsSample:
        return self._machine(name).sample()

    def perform(self, name: str, action: Action, *, force: bool = False, done: Done) -> None:
        """Begin ``action``; ``done`` is called with the result once it has finished.
        ``VMNotFound`` / ``VMNotRunning`` / ``CommandFailed`` are raised at once."""
        self._machine(name).perform(action, force, done)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def open_console(self, name: str, on_ready: Callable[[], None]) -> ConsoleTap:
        """A new reader of the VM's console; ``VMNotRunning`` unless running or paused."""
        return self._machine(name).open_console(on_ready)

    def halt(self) -> None:
        """Shut the simulation down: pending transitions are dropped, consoles reach eof."""
        for machine in self._machines.values():
            machine.halt()
        self._listeners.clear()

    def machine(self, name: str) -> Machine:
        """The machine itself, for tests and (later) scripted faults."""
        return self._machine(name)
