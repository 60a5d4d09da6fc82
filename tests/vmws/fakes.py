"""Stand-ins for the hub's collaborators in unit tests: a Peer, a backend whose actions
finish when the test says so, and a console stream fed by the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from vmws.backend import Action, Backend, ConsoleStream, MetricsSample, VMInfo, VMStatus
from vmws.errors import VMNotFound


class FakePeer:
    """Records what it is sent; its backlog and closing state are set by the test."""

    def __init__(self, user: str, name: str = "") -> None:
        self.session_id = name or user
        self.user = user
        self.last_seen = 0.0
        self.pending_bytes = 0
        self.closing = False
        self.closed_with: tuple[int, str] | None = None
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str, *, droppable: bool = False) -> None:
        if not self.closing:
            self.sent.append(orjson.loads(text))

    def ping(self) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.closed_with = (code, reason)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.sent if m["type"] == kind]


class FakeStream(ConsoleStream):
    """Output the test queues (or an endless flood); input kept, each write held until allowed."""

    def __init__(self) -> None:
        self.output: asyncio.Queue[bytes] = asyncio.Queue()
        self.flood: bytes | None = None
        self.reads = 0
        self.written: list[bytes] = []
        self.write_gate = asyncio.Event()
        self.write_gate.set()

    async def read(self) -> bytes:
        self.reads += 1
        if self.flood is not None:
            await asyncio.sleep(0)
            return self.flood
        return await self.output.get()

    async def write(self, data: bytes) -> None:
        await self.write_gate.wait()
        self.written.append(data)

    async def close(self) -> None:
        self.flood = None
        self.output.put_nowait(b"")


class FakeBackend(Backend):
    """VMs named in ``names``; each action waits until the test releases it, in order."""

    def __init__(self, names: tuple[str, ...] = ("vm-1",)) -> None:
        self.names = names
        self.started: list[tuple[str, Action, bool]] = []
        self.gates: list[asyncio.Event] = []
        self.streams: dict[str, FakeStream] = {}
        self.lookups = 0

    def _info(self, name: str) -> VMInfo:
        if name not in self.names:
            raise VMNotFound("no such VM")
        return VMInfo(name, VMStatus.RUNNING, 0.0, 0.0)

    async def list(self) -> list[VMInfo]:
        return [self._info(n) for n in self.names]

    async def get(self, name: str) -> VMInfo:
        self.lookups += 1
        return self._info(name)

    async def sample(self, name: str) -> MetricsSample:
        return MetricsSample(0.0, 0.0, 0, 1, 0, 0, 0, 0)

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        gate = asyncio.Event()
        self.started.append((name, action, force))
        self.gates.append(gate)
        await gate.wait()
        return self._info(name)

    def finish_next(self) -> None:
        """Let the oldest action still under way complete."""
        next(g for g in self.gates if not g.is_set()).set()

    def subscribe(self, listener: Callable[[VMInfo], None]) -> Callable[[], None]:
        return lambda: None

    async def open_console(self, name: str) -> ConsoleStream:
        self._info(name)
        return self.streams.setdefault(name, FakeStream())


async def settle(rounds: int = 20) -> None:
    """Let every task that can run, run (no wall-clock wait)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (polled; the timeout only guards against a hang)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)
