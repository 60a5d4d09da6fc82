"""The VMs this node owns, out of those it reaches: a backend for a libvirt node in a cluster.

A libvirt node reaches every VM of its hypervisor hosts, but owns (talks to) only those
whose lease it holds (``leases``). This backend shows the rest of vmws the owned ones
only, so the hub, the owner side of the relay and ``/api/vms`` treat every other VM as
another node's (relayed through Redis, as for a simulator shard). Before it acts on a
VM (a command, opening its console) it checks the lease in Redis (the fencing check).

A console taken over from a dead or drained owner continues the VM's history: the new
owner reads the ``:con`` stream and opens the console in the same epoch, its offsets
following the last byte held there (``ContinuedConsole``), so viewers resume with
``?since=`` on any node, byte-identically.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from vmws.backend import Action, Backend, ConsoleStream, MetricsSample, StatusListener, VMInfo
from vmws.cluster import wire
from vmws.cluster.relay import RelayUnavailable
from vmws.errors import VMNotFound

__all__ = ["ContinuedConsole", "OwnedBackend", "held_history"]

log = logging.getLogger("vmws.cluster")


class ContinuedConsole(ConsoleStream):
    """A console opened by a new owner, counting on from the history held in Redis."""

    def __init__(self, stream: ConsoleStream, start: int, epoch: str, history: bytes) -> None:
        self._stream = stream
        # What the hub reads to continue the history (see Hub._console_epoch).
        self.relayed_from = (start, epoch)
        self.history = history

    async def read(self) -> bytes:
        return await self._stream.read()

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def close(self) -> None:
        await self._stream.close()


async def held_history(redis: Any, vm: str) -> tuple[int, str, bytes] | None:
    """``(start offset, epoch, bytes)`` of the newest epoch's unbroken history in ``vm``'s
    ``:con`` stream, None when there is none (or Redis does not answer)."""
    try:
        entries = await redis.xrange(wire.console_key(vm), "-", "+")
    except Exception as exc:
        log.warning("console history of %s unreadable (%s): its console starts a new epoch", vm, exc)
        return None
    run: list[tuple[int, bytes]] = []
    epoch = b""
    for entry_id, fields in entries:
        try:
            at = int(entry_id.decode().partition("-")[0])
            data, entry_epoch = fields[b"d"], fields[b"e"]
        except (AttributeError, ValueError, KeyError, TypeError):
            continue
        if not isinstance(data, bytes) or not isinstance(entry_epoch, bytes) or len(entry_epoch) > 64:
            continue
        if entry_epoch != epoch or (run and run[-1][0] + len(run[-1][1]) != at):
            run, epoch = [], entry_epoch  # a new epoch or a hole: only what follows counts
        run.append((at, data))
    if not run:
        return None
    return run[0][0], epoch.decode("utf-8", "replace"), b"".join(data for _, data in run)


class OwnedBackend(Backend):
    def __init__(self, reach: Backend, redis: Any) -> None:
        self.reach = reach
        self.redis = redis
        self.capabilities = reach.capabilities
        self.owned: set[str] = set()
        # Set by the cluster: the fencing check (does Redis still hold our lease?).
        self.holds: Callable[[str], Any] | None = None
        # Set by the cluster: told the epoch a taken-over console continues.
        self.on_continue: Callable[[str, str], None] | None = None
        self._listeners: list[StatusListener] = []

    async def start(self) -> None:
        await self.reach.start()

    async def close(self) -> None:
        await self.reach.close()

    def conflicts(self) -> list[dict[str, Any]]:
        conflicts = getattr(self.reach, "conflicts", None)
        return list(conflicts()) if callable(conflicts) else []

    def host_of(self, name: str) -> str | None:
        host_of = getattr(self.reach, "host_of", None)
        return host_of(name) if callable(host_of) else None

    async def reachable(self) -> set[str]:
        """Every VM this node may own (its hosts' VMs, names found twice left out)."""
        return {info.name for info in await self.reach.list()}

    def _require_owned(self, name: str) -> None:
        if name not in self.owned:
            raise VMNotFound(f"VM {name!r} not found on this node")

    async def _fence(self, name: str) -> None:
        self._require_owned(name)
        if self.holds is not None and not await self.holds(name):
            raise RelayUnavailable(f"VM {name!r} changed owner node: try again")

    async def list(self) -> list[VMInfo]:
        return [info for info in await self.reach.list() if info.name in self.owned]

    async def get(self, name: str) -> VMInfo:
        self._require_owned(name)
        return await self.reach.get(name)

    async def sample(self, name: str) -> MetricsSample:
        self._require_owned(name)
        return await self.reach.sample(name)

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        await self._fence(name)
        return await self.reach.perform(name, action, force=force)

    async def open_console(self, name: str) -> ConsoleStream:
        await self._fence(name)
        held = await held_history(self.redis, name)
        stream = await self.reach.open_console(name)
        if held is None:
            return stream
        start, epoch, history = held
        if self.on_continue is not None:
            self.on_continue(name, epoch)
        log.info("console of %s continues epoch %s at offset %d", name, epoch, start + len(history))
        return ContinuedConsole(stream, start, epoch, history)

    async def open_screen(self, name: str) -> socket.socket:
        await self._fence(name)
        return await self.reach.open_screen(name)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        def owned_only(info: VMInfo) -> None:
            if info.name in self.owned:
                listener(info)

        return self.reach.subscribe(owned_only)
