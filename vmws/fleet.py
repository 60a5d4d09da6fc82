"""The fleet view: every VM's status and latest metrics, for ``/ws/fleet`` and the history.

One ``Fleet`` per server. From start-up it sweeps the whole fleet every
``fleet_interval``: lists the VMs (so VMs defined or undefined since are announced),
samples every VM nobody watches (the hub samples watched ones at the metrics interval
and hands those samples here) into the bounded ``MetricsHistory``, and sends every fleet
socket a summary, serialised once per distinct filter however many sockets share it.
Status changes reach fleet sockets as they happen, from the backend's subscription.

Every message is cut into frames of at most ``FRAME_BYTES`` (a VM entry is far smaller),
so 10,000 VMs never make one huge frame. A socket's filter (its token's ``vms`` and its
``?vms=`` glob) is applied to every entry: a VM outside it never appears.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from vmws.auth import Principal
from vmws.backend import Backend, MetricsSample, VMInfo
from vmws.errors import VMWSError
from vmws.history import MetricsHistory
from vmws.protocol import iso_timestamp

__all__ = ["Fleet", "FleetFilter", "FleetListener", "FRAME_BYTES"]

log = logging.getLogger("vmws.fleet")

# The largest frame a fleet message is cut into (bytes of JSON text). A VM entry is at
# most ~1.7 KiB (a 255-byte name, every byte escaped), so a frame holds at least one.
FRAME_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class FleetFilter:
    """Which VMs a fleet socket may see: its token's ``vms`` patterns and its ``?vms=`` glob.

    Equal filters share one serialised summary, so it is a value (hashable)."""

    # The token's ``vms`` alone (no subject, permission or expiry), so that tokens with
    # the same patterns compare equal; its own rule decides (``=NAME`` is an exact name).
    scope: Principal
    glob: str | None
    # The glob compiled here, not through fnmatch's process-wide cache of 32,768
    # patterns, which clients sending distinct globs would fill.
    _match: Callable[[str], object] | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, principal: Principal, glob: str | None) -> FleetFilter:
        match = re.compile(fnmatch.translate(glob)).match if glob is not None else None
        return cls(Principal("", frozenset(), principal.vms, 0.0), glob, match)

    def admits(self, name: str) -> bool:
        if self._match is not None and self._match(name) is None:
            return False
        return self.scope.may_reach(name)


class FleetListener(Protocol):
    def send(self, text: str, *, droppable: bool = False) -> None: ...


def _metrics_fields(sample: MetricsSample | None) -> dict[str, Any]:
    if sample is None:
        return {}
    return {
        "cpu": {"utilization": round(sample.cpu_utilization, 2)},
        "memory": {"used": sample.memory_used, "total": sample.memory_total},
    }


def status_entry(info: VMInfo, sample: MetricsSample | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.name,
        "status": info.status.value,
        "lastStateChange": iso_timestamp(info.last_state_change),
        "uptime": int(info.uptime),
    }
    entry.update(_metrics_fields(sample))
    return entry


def frames(kind: str, entries: Iterable[dict[str, Any]], now: float) -> list[str]:
    """``entries`` as ``kind`` messages of at most ``FRAME_BYTES`` each, ``data.vms`` holding
    a slice of them; the last has ``data.complete`` true (an empty list still makes one)."""
    head = f'{{"type":"{kind}","timestamp":"{iso_timestamp(now)}","data":{{"vms":['.encode()
    tails = (b'],"complete":false}}', b'],"complete":true}}')
    budget = FRAME_BYTES - len(head) - len(tails[0])
    chunks: list[list[bytes]] = [[]]
    size = 0
    for entry in entries:
        encoded = orjson.dumps(entry)
        if chunks[-1] and size + len(encoded) + 1 > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(encoded)
        size += len(encoded) + 1
    last = len(chunks) - 1
    return [(head + b",".join(chunk) + tails[i == last]).decode() for i, chunk in enumerate(chunks)]


def message(kind: str, data: dict[str, Any], now: float) -> str:
    return orjson.dumps({"type": kind, "timestamp": iso_timestamp(now), "data": data}).decode()


class Fleet:
    def __init__(
        self,
        backend: Backend,
        history: MetricsHistory,
        interval: float,
        now: Callable[[], float],
        is_watched: Callable[[str], bool],
    ) -> None:
        self.backend = backend
        self.history = history
        self.interval = interval
        self.now = now
        self._is_watched = is_watched
        self._infos: dict[str, VMInfo] = {}
        self._listeners: dict[FleetFilter, set[FleetListener]] = {}
        # The names each filter admits, worked out once when its first socket joins and
        # kept up to date as VMs come and go: a summary or a status change is then a set
        # lookup per VM, not a glob match.
        self._members: dict[FleetFilter, set[str]] = {}
        # Snapshot frames per filter, reused until the fleet changes (a status, a VM
        # added or removed, a sweep): a thousand dashboards reconnecting after a restart
        # cost one snapshot per filter, not a thousand (80 ms each at 10,000 VMs).
        self._version = 0
        self._snapshots: dict[FleetFilter, tuple[int, list[str]]] = {}
        self._filters: dict[FleetListener, FleetFilter] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_sweep_seconds = 0.0  # how long the last sweep took (sampling and summaries)

    async def start(self) -> None:
        try:
            self._infos = {info.name: info for info in await self.backend.list()}
        except VMWSError as exc:
            log.warning("fleet: cannot list VMs at start-up: %s", exc.message)
        self._unsubscribe = self.backend.subscribe(self._on_status)
        self._task = asyncio.create_task(self._loop(), name="fleet")

    async def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # Sockets

    def join(self, listener: FleetListener, fleet_filter: FleetFilter) -> None:
        """Send ``listener`` the snapshot of what it may see, then keep it posted."""
        members = self._members.get(fleet_filter)
        if members is None:
            members = self._members[fleet_filter] = {name for name in self._infos if fleet_filter.admits(name)}
        cached = self._snapshots.get(fleet_filter)
        if cached is None or cached[0] != self._version:
            entries = (
                status_entry(info, self.history.latest(name))
                for name, info in sorted(self._infos.items())
                if name in members
            )
            cached = self._snapshots[fleet_filter] = (self._version, frames("fleet_snapshot", entries, self.now()))
        for text in cached[1]:
            listener.send(text)
        self._filters[listener] = fleet_filter
        self._listeners.setdefault(fleet_filter, set()).add(listener)

    def leave(self, listener: FleetListener) -> None:
        fleet_filter = self._filters.pop(listener, None)
        if fleet_filter is None:
            return
        group = self._listeners[fleet_filter]
        group.discard(listener)
        if not group:
            del self._listeners[fleet_filter]
            del self._members[fleet_filter]
            self._snapshots.pop(fleet_filter, None)

    @property
    def listener_count(self) -> int:
        return len(self._filters)

    def _broadcast(self, name: str, text: str) -> None:
        for fleet_filter, group in list(self._listeners.items()):
            if name in self._members[fleet_filter]:
                for listener in list(group):
                    listener.send(text)

    def _admit_new(self, name: str) -> None:
        for fleet_filter, members in self._members.items():
            if fleet_filter.admits(name):
                members.add(name)

    # Events

    def record(self, vm: str, sample: MetricsSample) -> None:
        """A sample the hub took of a watched VM: into the history at the metrics interval."""
        if vm in self._infos:
            self.history.record(vm, sample, self.now())

    def _on_status(self, info: VMInfo) -> None:
        self._version += 1
        known = info.name in self._infos
        self._infos[info.name] = info
        if not known:
            self._admit_new(info.name)
        kind = "fleet_status" if known else "fleet_added"
        self._broadcast(info.name, message(kind, status_entry(info, self.history.latest(info.name)), self.now()))

    # The sweep

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.sweep()
            except Exception:
                log.exception("fleet sweep failed")
            self.last_sweep_seconds = loop.time() - started
            await asyncio.sleep(max(0.0, self.interval - self.last_sweep_seconds))

    async def sweep(self) -> None:
        """List the fleet (announcing VMs that came or went), sample every unwatched VM,
        send each group of sockets its summary."""
        try:
            infos = await self.backend.list()
        except VMWSError as exc:
            log.warning("fleet: cannot list VMs: %s", exc.message)
            return
        self._reconcile(infos)
        self._version += 1  # uptimes and metrics moved on
        for info in infos:
            name = info.name
            if self._is_watched(name) or name not in self._infos:
                continue
            try:
                sample = await self.backend.sample(name)
            except VMWSError:
                continue  # gone or unreadable for now; the next sweep tries again
            self.history.record(name, sample, self.now())
        self._send_summaries()

    def _reconcile(self, infos: list[VMInfo]) -> None:
        current = {info.name: info for info in infos}
        now = self.now()
        for name in [n for n in self._infos if n not in current]:
            gone = self._infos.pop(name)
            self.history.forget(name)
            self._broadcast(name, message("fleet_removed", {"name": name, "status": gone.status.value}, now))
            for members in self._members.values():
                members.discard(name)
        for name, info in current.items():
            if name not in self._infos:
                self._infos[name] = info
                self._admit_new(name)
                self._broadcast(name, message("fleet_added", status_entry(info), now))
            else:
                self._infos[name] = info  # uptime moves on; statuses also arrive as events

    def _summary_entry(self, name: str, info: VMInfo) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "status": info.status.value}
        latest = self.history.latest_cpu_memory(name)
        if latest is not None:
            entry["cpu"] = {"utilization": round(latest[0], 2)}
            entry["memory"] = {"used": latest[1], "total": latest[2]}
        return entry

    def _send_summaries(self) -> None:
        if not self._listeners:
            return
        now = self.now()
        ordered = sorted(self._infos.items())
        for fleet_filter, group in list(self._listeners.items()):
            members = self._members[fleet_filter]
            entries = (self._summary_entry(name, info) for name, info in ordered if name in members)
            texts = frames("fleet_summary", entries, now)  # once per filter, for every socket
            for listener in list(group):
                for text in texts:
                    listener.send(text, droppable=True)
