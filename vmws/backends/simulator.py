"""The simulator as a ``Backend``: asyncio futures and events over the sans-I/O engine.

All simulation lives in ``simulator/``; this module only waits. ``perform`` waits for
the engine's completion callback (actions on one VM are queued, one at a time, as the
hub would), and a ``ConsoleStream`` waits for its tap to have output. Timers run on
the clock given, or on the running loop's clock (``speed`` times real time) when none
is; a ``VirtualClock`` works too as long as someone advances it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from simulator.engine import Simulator
from simulator.fleet import FleetSpec, demo_fleet, load_scenario
from simulator.machine import ConsoleTap
from vmws.backend import (
    Action,
    Backend,
    Capability,
    ConsoleStream,
    MetricsSample,
    StatusListener,
    VMInfo,
)
from vmws.clock import Clock, LoopClock

__all__ = ["SimulatorBackend", "SimulatorConsoleStream"]


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


class SimulatorBackend(Backend):
    """The simulated fleet: the demo fleet, or a scenario file (``simulator/fleet.py``)."""

    capabilities = frozenset(Capability)

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        scenario: str | os.PathLike[str] | None = None,
        speed: float = 1.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        # read the scenario now so a bad file is reported before anything starts
        self._fleet: FleetSpec = demo_fleet() if scenario is None else load_scenario(scenario)
        self._seed = seed
        self._speed = speed
        self._sim: Simulator | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, asyncio.Future[VMInfo]] = {}
        if clock is not None:
            self._sim = Simulator(clock, self._fleet, seed=seed)

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("SimulatorBackend.start() has not been called")
        return self._sim

    async def start(self) -> None:
        if self._sim is None:
            clock = LoopClock(asyncio.get_running_loop(), self._speed)
            self._sim = Simulator(clock, self._fleet, seed=self._seed)

    async def close(self) -> None:
        if self._sim is not None:
            self._sim.halt()

    async def list(self) -> list[VMInfo]:
        return self.simulator.list()

    async def get(self, name: str) -> VMInfo:
        return self.simulator.info(name)

    async def sample(self, name: str) -> MetricsSample:
        return self.simulator.sample(name)

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        sim = self.simulator
        sim.info(name)  # VMNotFound before queueing behind anything
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            previous = self._running.get(name)
            if previous is not None and not previous.done():
                # its waiter was cancelled but the transition goes on; queue behind it
                await asyncio.shield(previous)
            result: asyncio.Future[VMInfo] = asyncio.get_running_loop().create_future()

            def done(info: VMInfo) -> None:
                if not result.done():
                    result.set_result(info)

            sim.perform(name, action, force=force, done=done)
            self._running[name] = result
            return await asyncio.shield(result)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        return self.simulator.subscribe(listener)

    async def open_console(self, name: str) -> ConsoleStream:
        return SimulatorConsoleStream(self.simulator, name)
