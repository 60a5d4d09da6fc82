"""The simulated fleet: machines sharing one clock, one seeded generator, one event log
and a timeline of scripted events.

This is the sans-I/O face of the simulator: plain method calls and callbacks, no
asyncio. ``vmws.backends.simulator`` adapts it to the async ``Backend`` interface;
tests and ``python -m simulator run`` drive it directly on a ``VirtualClock``. Given
the same fleet, seed and inputs at the same clock times, it produces the same event
log and console bytes.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable

from simulator.clock import Clock
from simulator.eventlog import Category, EventLog
from simulator.fleet import FleetSpec
from simulator.listeners import add_listener
from simulator.machine import Done, Machine, Outcome
from simulator.scenario import demo_fleet
from simulator.screen.link import Reactor
from simulator.taps import ConsoleTap
from simulator.timeline import Timeline
from vmws.backend import Action, MetricsSample, StatusListener, VMInfo
from vmws.errors import BackendError, VMNotFound

__all__ = ["Simulator"]

log = logging.getLogger(__name__)


class Simulator:
    def __init__(
        self,
        clock: Clock,
        fleet: FleetSpec | None = None,
        *,
        seed: int = 0,
        log_limit: int = 10_000,
        reactor: Reactor | None = None,
    ) -> None:
        self.clock = clock
        # the event loop screens are served on: given, or the loop behind a LoopClock;
        # with a VirtualClock and none given, set it before opening a screen
        self.reactor: Reactor | None = reactor if reactor is not None else getattr(clock, "reactor", None)
        self.fleet = fleet or demo_fleet()
        self._rng = random.Random(seed)
        salt = self._rng.getrandbits(64)
        self._listeners: list[StatusListener] = []
        self.events = EventLog(clock.time, log_limit)
        record = self.events.record
        specs = sorted(self.fleet.vms, key=lambda vm: vm.name)
        self._machines = {spec.name: Machine(spec, clock, self._rng, salt, self._notify, record) for spec in specs}
        self._halted = False
        self.timeline = Timeline(self, self.fleet.events, self._rng)

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

    @property
    def halted(self) -> bool:
        return self._halted

    def names(self) -> list[str]:
        return list(self._machines)

    def list(self) -> list[VMInfo]:
        return [m.info() for m in self._machines.values()]

    def info(self, name: str) -> VMInfo:
        return self._machine(name).info()

    def sample(self, name: str) -> MetricsSample:
        return self._machine(name).sample()

    def perform(self, name: str, action: Action, *, force: bool = False, done: Done) -> None:
        """Carry out ``action`` (after any already asked for on that VM); ``done`` gets
        the resulting ``VMInfo`` or the ``BackendError``. ``VMNotFound`` is raised at once."""
        machine = self._machine(name)
        self.events.record(name, Category.COMMAND, f"{action.value}{' (force)' if force else ''}")

        def finished(outcome: Outcome) -> None:
            if isinstance(outcome, BackendError):
                self.events.record(name, Category.COMMAND, f"{action.value} failed: {outcome.message}")
            else:
                self.events.record(name, Category.COMMAND, f"{action.value} done: {outcome.status.value}")
            done(outcome)

        machine.perform(action, force, finished)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        return add_listener(self._listeners, listener)

    def open_console(self, name: str, on_ready: Callable[[], None]) -> ConsoleTap:
        """A new reader of the VM's console; ``VMNotRunning`` unless it is running."""
        return self._machine(name).open_console(on_ready)

    def open_screen(self, name: str) -> socket.socket:
        """A new viewer of the VM's screen (tty1 on a VGA text console): a connected
        socket whose other end is an RFB 3.8 server, served on ``reactor``.
        ``VMNotFound``; ``VMNotRunning`` unless the VM runs or is paused (then the
        picture is frozen). When the VM stops, each viewer gets its last update and
        the socket is closed."""
        return self._machine(name).open_screen(self.reactor)

    def type(self, name: str, data: bytes) -> None:
        """Keys typed on the VM's serial console, whether or not anyone reads it."""
        self._machine(name).console_input(data)

    def halt(self) -> None:
        """Shut the simulation down: pending transitions are dropped, consoles reach eof."""
        self._halted = True
        for machine in self._machines.values():
            machine.halt()
        self._listeners.clear()

    def machine(self, name: str) -> Machine:
        """The machine itself, for the timeline and for tests."""
        return self._machine(name)
