"""The scripted timeline: each ``[[event]]`` of a scenario, fired at its clock time.

One clock timer per pending event (not per VM): at ``at`` seconds after the simulation
started the event is applied to its VMs (or to ``pick`` of them, chosen by the
simulation's seeded generator), then again every ``every`` seconds, ``repeat`` times or
until the simulation halts. Faults go to the machines; actions go through the
simulator as if a user had sent the command; ``type`` sends keys to the console.
Everything that happens is written to the event log.
"""

from __future__ import annotations

import functools
import random
from typing import Protocol

from simulator.clock import Clock
from simulator.eventlog import Category, EventLog
from simulator.faults import BurstKind
from simulator.fleet import EventKind, TimelineEvent
from simulator.machine import Done, Machine, Outcome
from vmws.backend import Action

__all__ = ["Fleet", "Timeline"]


class Fleet(Protocol):
    """What the timeline acts on (the engine's ``Simulator``): named here so the timeline
    does not import the engine that owns it."""

    clock: Clock
    events: EventLog

    @property
    def halted(self) -> bool: ...

    def machine(self, name: str) -> Machine: ...

    def perform(self, name: str, action: Action, *, force: bool = False, done: Done) -> None: ...

    def type(self, name: str, data: bytes) -> None: ...


class Timeline:
    def __init__(self, sim: Fleet, events: tuple[TimelineEvent, ...], rng: random.Random) -> None:
        self._sim = sim
        self._rng = rng
        self.events = events
        for index, event in enumerate(events):
            sim.clock.call_later(event.at, functools.partial(self._fire, index, event, 1))

    def _fire(self, index: int, event: TimelineEvent, occurrence: int) -> None:
        sim = self._sim
        if sim.halted:
            return
        targets = list(event.vms)
        if event.pick is not None and event.pick < len(targets):
            targets = sorted(self._rng.sample(targets, event.pick))
        where = f"event #{index + 1}" + (f" (line {event.line})" if event.line else "")
        for name in targets:
            sim.events.record(name, Category.TIMELINE, f"{event.kind.value} [{where}]")
            self.apply(event, name)
        if event.every is not None and (event.repeat is None or occurrence < event.repeat):
            sim.clock.call_later(event.every, functools.partial(self._fire, index, event, occurrence + 1))

    def apply(self, event: TimelineEvent, name: str) -> None:
        """Do ``event`` to VM ``name`` now."""
        sim = self._sim
        machine = sim.machine(name)
        kind = event.kind
        action = kind.action
        if action is not None:

            def ignore(outcome: Outcome) -> None:
                pass  # the simulator's event log already says how it went

            sim.perform(name, action, force=event.force, done=ignore)
            return
        applied = True
        if kind is EventKind.CRASH:
            applied = machine.crash()
        elif kind is EventKind.HANG_ON_SHUTDOWN:
            machine.faults.hang_shutdown = True
        elif kind is EventKind.STUCK_BOOTING:
            machine.faults.stuck_boot = True
        elif kind is EventKind.FAIL_NEXT_COMMAND:
            faults = machine.faults
            faults.fail_commands, faults.fail_action, faults.fail_message = event.times, event.action, event.message
        elif kind is EventKind.PAUSE:
            applied = machine.fault_pause(event.duration)
        elif kind is EventKind.DISK_BURST:
            applied = machine.burst(BurstKind.DISK, event.duration, event.rate)
        elif kind is EventKind.NETWORK_BURST:
            applied = machine.burst(BurstKind.NETWORK, event.duration, event.rate)
        else:
            sim.type(name, event.text.encode())
        if not applied:
            why = "busy" if machine.busy else machine.status.value
            sim.events.record(name, Category.FAULT, f"{kind.value} ignored: the VM is {why}")
