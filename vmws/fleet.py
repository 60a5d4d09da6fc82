"""The fleet view: every VM's status and latest metrics, for ``/ws/fleet`` and the history.

One ``Fleet`` per server. From start-up it sweeps the whole fleet every
``fleet_interval``: lists the VMs (so VMs defined or undefined since are announced),
samples every VM nobody watches (the hub samples watched ones at the metrics interval
and hands those samples here) into the bounded ``MetricsHistory``, and sends every fleet
socket a summary, serialised once per distinct filter however many sockets share it.
Status changes reach fleet sockets as they happen, from the backend's subscription.

In a cluster (``vmws.cluster.fleet``) the fleet also holds the other nodes' VMs: they
arrive through ``put`` and ``drop`` with their owners' CPU and memory; only this node's
VMs (its backend's ``list``) are sampled and kept in its history.

Every message is cut into frames of at most ``FRAME_BYTES`` (a VM entry is far smaller),
so 10,000 VMs never make one huge frame. A socket's filter (its token's ``vms`` and its
``?vms=`` glob) is applied to every entry: a VM outside it never appears.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from vmws.auth import Principal
from vmws.backend import Backend, MetricsSample, VMInfo
from vmws.errors import VMWSError
from vmws.history import MetricsHistory
from vmws.protocol import iso_timestamp

__all__ = ["Fleet", "FleetFilter", "FleetListener", "FRAME_BYTES", "CpuMemory"]

log = logging.getLogger("vmws.fleet")

# The largest frame a fleet message is cut into (bytes of JSON text). A VM entry is at
# most ~1.7 KiB (a 255-byte name, every byte escaped), so a frame holds at least one.
FRAME_BYTES = 32 * 1024
# A sweep hands the event loop back after this much work: sampling 3,000 simulated VMs
# in one go held every socket for 80–240 ms each interval (the echo benchmark's tail).
SWEEP_SLICE_SECONDS = 0.002


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


# A VM's latest CPU percent, memory used and memory total.
CpuMemory = tuple[float, int, int]


def _add_cpu_memory(entry: dict[str, Any], latest: CpuMemory | None) -> dict[str, Any]:
    if latest is not None:
        entry["cpu"] = {"utilization": round(latest[0], 2)}
        entry["memory"] = {"used": latest[1], "total": latest[2]}
    return entry


def status_entry(info: VMInfo, latest: CpuMemory | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.name,
        "status": info.status.value,
        "lastStateChange": iso_timestamp(info.last_state_change),
        "uptime": int(info.uptime),
    }
    return _add_cpu_memory(entry, latest)


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
        # Whether a VM is sampled at the metrics interval elsewhere (its watchers' sampler,
        # or, in a cluster, for other nodes' watchers): the sweep leaves it out.
        self._watched: list[Callable[[str], bool]] = [is_watched]
        self._infos: dict[str, VMInfo] = {}  # every VM it shows: this node's and (cluster) others'
        self._local: set[str] = set()  # this node's VMs (its backend lists them)
        self._remote_latest: dict[str, CpuMemory] = {}  # other nodes' VMs: their owner's figures
        # Told after each sweep has sampled (a cluster node publishes its VMs' summary).
        self.swept: list[Callable[[], None]] = []
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
            self._local = set(self._infos)
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
                status_entry(info, self.cpu_memory(name))
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

    def also_watched(self, predicate: Callable[[str], bool]) -> None:
        """VMs for which ``predicate`` is true are sampled elsewhere: the sweep skips them."""
        self._watched.append(predicate)

    def is_local(self, vm: str) -> bool:
        return vm in self._local

    def record(self, vm: str, sample: MetricsSample) -> None:
        """A sample taken of one of this node's VMs: into the history at the metrics interval."""
        if vm in self._local:
            self.history.record(vm, sample, self.now())

    def cpu_memory(self, vm: str) -> CpuMemory | None:
        """The latest CPU and memory of ``vm``: its history's, or its owner node's."""
        latest = self.history.latest_cpu_memory(vm)
        return latest if latest is not None else self._remote_latest.get(vm)

    def _on_status(self, info: VMInfo) -> None:
        self.put(info)

    def put(self, info: VMInfo) -> None:
        """``info`` is the news of a VM (a status event, or another node's summary): a VM
        not seen before is announced (``fleet_added``), a new status or state change is
        sent (``fleet_status``); the same news twice (it may come by two ways in a
        cluster) or an uptime moving on is kept without a message."""
        name = info.name
        known = self._infos.get(name)
        self._infos[name] = info
        if known is not None and (known.status, known.last_state_change) == (info.status, info.last_state_change):
            return
        self._version += 1
        if known is None:
            self._admit_new(name)
        kind = "fleet_status" if known is not None else "fleet_added"
        self._broadcast(name, message(kind, status_entry(info, self.cpu_memory(name)), self.now()))

    def set_remote_latest(self, name: str, latest: CpuMemory | None) -> None:
        """Another node's VM: its owner's latest CPU and memory (None: none known)."""
        if name in self._local:
            return
        if latest is None:
            self._remote_latest.pop(name, None)
        else:
            self._remote_latest[name] = latest

    def drop(self, name: str) -> None:
        """Another node's VM is gone (its node left, or it moved out of the cluster)."""
        if name in self._local or name not in self._infos:
            return
        self._remove(name, self.now())

    def _remove(self, name: str, now: float) -> None:
        self._version += 1
        gone = self._infos.pop(name)
        self._local.discard(name)
        self._remote_latest.pop(name, None)
        self.history.forget(name)
        self._broadcast(name, message("fleet_removed", {"name": name, "status": gone.status.value}, now))
        for members in self._members.values():
            members.discard(name)

    def local_entries(self) -> list[tuple[VMInfo, CpuMemory | None]]:
        """This node's VMs with their latest CPU and memory (what an owner publishes)."""
        return [(self._infos[name], self.history.latest_cpu_memory(name)) for name in sorted(self._local)]

    # The sweep

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        first = True  # the start-up sweep runs whole: the first snapshots show every VM's figures
        while True:
            started = loop.time()
            try:
                await self.sweep(sliced=not first)
            except Exception:
                log.exception("fleet sweep failed")
            self.last_sweep_seconds = loop.time() - started
            first = False
            await asyncio.sleep(max(0.0, self.interval - self.last_sweep_seconds))

    async def sweep(self, *, sliced: bool = True) -> None:
        """List the fleet (announcing VMs that came or went), sample every unwatched VM,
        send each group of sockets its summary. ``sliced``: hand the loop back every
        ``SWEEP_SLICE_SECONDS`` meanwhile."""
        try:
            infos = await self.backend.list()
        except VMWSError as exc:
            log.warning("fleet: cannot list VMs: %s", exc.message)
            return
        self._reconcile(infos)
        self._version += 1  # uptimes and metrics moved on
        yield_at = time.perf_counter() + SWEEP_SLICE_SECONDS
        for info in infos:
            if sliced and time.perf_counter() >= yield_at:
                await asyncio.sleep(0)  # other sockets' turn; checks below see the fleet as it is now
                yield_at = time.perf_counter() + SWEEP_SLICE_SECONDS
            name = info.name
            if any(watched(name) for watched in self._watched) or name not in self._local:
                continue
            try:
                sample = await self.backend.sample(name)
            except VMWSError:
                continue  # gone or unreadable for now; the next sweep tries again
            self.history.record(name, sample, self.now())
        for listener in self.swept:
            listener()
        self._send_summaries()

    def _reconcile(self, infos: list[VMInfo]) -> None:
        """This node's VMs as listed now: those gone are removed, new ones announced."""
        current = {info.name: info for info in infos}
        now = self.now()
        for name in [n for n in self._local if n not in current]:
            self._remove(name, now)
        for name, info in current.items():
            self._remote_latest.pop(name, None)
            if name not in self._local:
                self._local.add(name)
                self.put(info)  # announced if new here; a VM that was another node's moves quietly
            else:
                self._infos[name] = info  # uptime moves on; statuses also arrive as events

    def _summary_entry(self, name: str, info: VMInfo) -> dict[str, Any]:
        return _add_cpu_memory({"name": name, "status": info.status.value}, self.cpu_memory(name))

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
