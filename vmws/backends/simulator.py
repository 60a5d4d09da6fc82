"""The simulator as a ``Backend``: asyncio futures and events over the sans-I/O engine.

All simulation lives in ``simulator/``; this module only waits. ``perform`` waits for
the engine's completion callback (the engine queues actions on one VM itself, and
lets a forced stop cut in), and a ``ConsoleStream`` waits for its tap to have output.
Timers run on the clock given, or on the running loop's clock (``speed`` times real
time) when none is; a ``VirtualClock`` works too as long as someone advances it. The
simulation's timeline events and faults are logged (logger ``simulator``) as they fire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Self

from simulator.clock import Clock, LoopClock
from simulator.engine import Simulator
from simulator.eventlog import Category, Entry
from simulator.fleet import FleetSpec
from simulator.machine import Outcome
from simulator.scenario import demo_fleet, load_scenario
from simulator.taps import ConsoleTap
from vmws.backend import (
    Action,
    Backend,
    Capability,
    ConsoleStream,
    MetricsSample,
    StatusListener,
    VMInfo,
    check_screen_status,
)
from vmws.config import Config

__all__ = ["SimulatorBackend", "SimulatorConsoleStream"]

log = logging.getLogger("simulator")


class SimulatorConsoleStream(ConsoleStream):
    """A console tap awaited: ``read`` returns all output buffered so far, joined."""

    def __init__(self, simulator: Simulator, name: str) -> None:
        self._ready = asyncio.Event()
        self._tap: ConsoleTap = simulator.open_console(name, self._ready.set)

    async def read(self) -> bytes:
        tap = self._tap
        while True:
            pumped = tap.buffered == 0  # anything read now came from a running flood
            data = tap.read()
            if data:
                if pumped:
                    # a flood would otherwise never yield; a serial line has a pace
                    await asyncio.sleep(0)
                return data
            if tap.eof:
                return b""
            self._ready.clear()
            await self._ready.wait()

    async def write(self, data: bytes) -> None:
        self._tap.write(data)

    async def close(self) -> None:
        self._tap.close()


def _log_entry(entry: Entry) -> None:
    level = logging.INFO if entry.category in (Category.TIMELINE, Category.FAULT) else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "%s %s: %s", entry.vm, entry.category.value, entry.text)


class SimulatorBackend(Backend):
    """The simulated fleet: the demo fleet, or a scenario file (``docs/simulator.md``).

    It has every capability; a subclass that declares fewer (to stand in for a lesser
    backend, libvirt's ``test:///`` say) gets the calls they govern refused for it.
    """

    capabilities = frozenset(Capability)

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        scenario: str | os.PathLike[str] | None = None,
        speed: float = 1.0,
        fleet: FleetSpec | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        # read the scenario now so a bad file is reported before anything starts
        if fleet is None:
            fleet = demo_fleet() if scenario is None else load_scenario(scenario)
        self._fleet = fleet
        self._seed = seed
        self._speed = speed
        self._sim: Simulator | None = None
        if clock is not None:
            self._build(clock)

    @classmethod
    def from_config(cls, config: Config) -> Self:
        if config.shard:
            # A cluster node simulates only its shard of the fleet (docs/cluster.md).
            from vmws.cluster.shard import parse_shard, shard_fleet

            fleet = demo_fleet() if config.scenario is None else load_scenario(config.scenario)
            return cls(seed=config.seed, fleet=shard_fleet(fleet, parse_shard(config.shard)), speed=config.speed)
        return cls(seed=config.seed, scenario=config.scenario, speed=config.speed)

    def _build(self, clock: Clock) -> None:
        self._sim = Simulator(clock, self._fleet, seed=self._seed)
        self._sim.events.subscribe(_log_entry)

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("SimulatorBackend.start() has not been called")
        return self._sim

    async def start(self) -> None:
        if self._sim is None:
            self._build(LoopClock(asyncio.get_running_loop(), self._speed))

    async def close(self) -> None:
        if self._sim is not None:
            self._sim.halt()

    async def list(self) -> list[VMInfo]:
        return self.simulator.list()

    async def get(self, name: str) -> VMInfo:
        return self.simulator.info(name)

    async def sample(self, name: str) -> MetricsSample:
        if Capability.METRICS not in self.capabilities:
            self.simulator.info(name)  # an unknown VM is VMNotFound first
            self.check_capability(Capability.METRICS, "sample a VM's metrics")
        return self.simulator.sample(name)

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        self.simulator.info(name)  # an unknown VM is VMNotFound first
        self.check_action(action)
        result: asyncio.Future[VMInfo] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if result.done():
                return
            if isinstance(outcome, VMInfo):
                result.set_result(outcome)
            else:
                result.set_exception(outcome)

        # a waiter cancelled before a failure arrives must not leave it "never retrieved"
        result.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.simulator.perform(name, action, force=force, done=done)
        # a cancelled waiter does not undo the action: it goes on in the simulator
        return await asyncio.shield(result)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        return self.simulator.subscribe(listener)

    async def open_console(self, name: str) -> ConsoleStream:
        if Capability.CONSOLE not in self.capabilities:
            self.simulator.info(name)  # an unknown VM is VMNotFound first
            self.check_capability(Capability.CONSOLE, "open a VM's serial console")
        return SimulatorConsoleStream(self.simulator, name)

    async def open_screen(self, name: str) -> socket.socket:
        check_screen_status(self.simulator.info(name))  # VMNotFound, then VMNotRunning
        # one end of a socket pair served by the VM's RFB server (simulator/screen/)
        return self.simulator.open_screen(name)
