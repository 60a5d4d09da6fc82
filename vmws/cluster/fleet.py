"""``/ws/fleet`` across nodes: every node's fleet holds every VM of the cluster.

Everything goes on one pub/sub channel, ``vmws:fleet`` (``FLEET_CHANNEL``):

- ``summary``: after each fleet sweep (every ``--fleet-interval``) a node publishes its
  own VMs (name, status, state change, uptime, CPU, memory) once, in parts of at most
  ``PART_BYTES``, numbered by ``seq``, the last marked ``last``. One message per node
  per interval (per part), whatever the number of VMs or of fleet sockets.
- ``status``: a status change of one of its VMs, as it happens.
- ``sync``: sent by a node as it starts: every node answers with its summary at once.
- ``leaving``: a node stopping cleanly; its VMs are removed everywhere at once.

Each node keeps, per other node, the VMs of its last whole summary: a VM missing from
the next one is removed (``fleet_removed``). A node whose liveness key is gone (or names
another incarnation) is dead: its VMs turn ``error`` (as ``/api/vms`` lists them) until
it comes back and publishes again (once ``MAX_NODES`` are known, a dead one is forgotten
to make room for a new one). At start the node reads every VM record in Redis, so its
first snapshot is whole before any summary arrives. Everything read is checked; a
message that fails is dropped with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from vmws.backend import Backend, VMInfo, VMStatus
from vmws.cluster import wire
from vmws.cluster.backend import live_incarnation, parse_record
from vmws.cluster.checks import MAX_TIME, number
from vmws.cluster.membership import NODE_TTL, REFRESH_INTERVAL, node_key
from vmws.cluster.relay import Relay
from vmws.fleet import CpuMemory, Fleet

__all__ = ["ClusterFleet", "array_parts", "FLEET_CHANNEL", "PART_BYTES", "MAX_NODES", "MAX_VMS_PER_NODE"]

log = logging.getLogger("vmws.cluster")

FLEET_CHANNEL = "vmws:fleet"
PART_BYTES = 256 * 1024
MAX_NODES = 1000
MAX_VMS_PER_NODE = 100_000
_MAX_NAME_BYTES = 255


@dataclass
class _NodeView:
    incarnation: str
    names: set[str] = field(default_factory=set)
    dead: bool = False
    # The summary being received: (seq, entries so far).
    partial: tuple[int, list[tuple[VMInfo, CpuMemory | None]]] | None = None


def array_parts(items: Iterable[object], limit: int = PART_BYTES) -> list[bytes]:
    """``items`` as JSON arrays of at most ``limit`` bytes each (one item may be more);
    at least one, empty when there are none."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        encoded = orjson.dumps(item)
        if parts[-1] and size + len(encoded) + 2 > limit:
            parts.append([])
            size = 0
        parts[-1].append(encoded)
        size += len(encoded) + 1
    return [b"[" + b",".join(part) + b"]" for part in parts]


def _entry(info: VMInfo, latest: CpuMemory | None) -> list[Any]:
    cpu, used, total = latest if latest is not None else (None, None, None)
    return [info.name, info.status.value, info.last_state_change, info.uptime, cpu, used, total]


def _parse_entry(raw: object) -> tuple[VMInfo, CpuMemory | None]:
    if not isinstance(raw, list) or len(raw) != 7:
        raise ValueError("an entry is not 7 fields")
    name, status, changed, uptime, cpu, used, total = raw
    if not isinstance(name, str) or not 0 < len(name.encode("utf-8", "surrogatepass")) <= _MAX_NAME_BYTES:
        raise ValueError("a name is not 1 to 255 bytes")
    info = VMInfo(name, VMStatus(status), number(changed, MAX_TIME), number(uptime, MAX_TIME))
    if cpu is None:
        return info, None
    return info, (min(number(cpu), 100.0), int(number(used)), int(number(total)))


class ClusterFleet:
    def __init__(
        self,
        fleet: Fleet,
        relay: Relay,
        local: Backend,
        name: str,
        incarnation: str,
        owned: Callable[[str], bool],
    ) -> None:
        self._fleet, self._relay, self._local = fleet, relay, local
        self._name, self._incarnation = name, incarnation
        self._owned = owned
        self._nodes: dict[str, _NodeView] = {}
        self._owner_of: dict[str, str] = {}  # another node's VM -> that node
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        await self._read_records()
        await self._relay.listen(FLEET_CHANNEL, self._on_message)
        self._unsubscribe = self._local.subscribe(self._on_local_status)
        self._fleet.swept.append(self.publish)
        self.publish()  # the others learn this node's VMs at once
        self._send({"op": "sync"})
        self._task = asyncio.create_task(self._checking(), name="fleet-liveness")

    async def stop(self) -> None:
        """Leave cleanly: every node removes this node's VMs at once."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.publish in self._fleet.swept:
            self._fleet.swept.remove(self.publish)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # Redis down: the others see the node die instead
            message = wire.encode({"op": "leaving", "node": self._name, "inc": self._incarnation})
            await asyncio.wait_for(self._relay.redis.publish(FLEET_CHANNEL, message), 2)

    # Publishing this node's VMs

    def _send(self, header: dict[str, Any], data: bytes = b"") -> None:
        header = {**header, "node": self._name, "inc": self._incarnation}
        self._relay.enqueue("publish", FLEET_CHANNEL, wire.encode(header, data))

    def publish(self) -> None:
        """This node's VMs and their latest figures, once, in parts."""
        self._seq += 1
        entries = (_entry(info, latest) for info, latest in self._fleet.local_entries() if self._owned(info.name))
        parts = array_parts(entries)
        for i, part in enumerate(parts):
            self._send({"op": "summary", "seq": self._seq, "last": i == len(parts) - 1}, part)

    def _on_local_status(self, info: VMInfo) -> None:
        if self._owned(info.name):
            self._send({"op": "status"}, orjson.dumps(_entry(info, self._fleet.cpu_memory(info.name))))

    # What the other nodes publish

    def _on_message(self, header: dict[str, Any], data: bytes) -> None:
        try:
            op = wire.field_str(header, "op", 16)
            node = wire.field_str(header, "node")
            incarnation = wire.field_str(header, "inc", 64)
            if node == self._name:
                return
            if op == "sync":
                self.publish()
            elif op == "summary":
                self._on_summary_part(
                    node, incarnation, wire.field_int(header, "seq"), header.get("last") is True, data
                )
            elif op == "status":
                self._on_status(node, incarnation, data)
            elif op == "leaving":
                view = self._nodes.get(node)
                if view is not None and view.incarnation == incarnation:
                    self._forget_node(node)
        except ValueError as exc:
            log.warning("dropped a fleet message from another node: %s", exc)

    def _view(self, node: str, incarnation: str) -> _NodeView:
        view = self._nodes.get(node)
        if view is None:
            if len(self._nodes) >= MAX_NODES:
                self._make_room()
            view = self._nodes[node] = _NodeView(incarnation)
        elif view.incarnation != incarnation:
            view.incarnation, view.dead, view.partial = incarnation, False, None  # it restarted
        return view

    def _entries(self, data: bytes) -> list[tuple[VMInfo, CpuMemory | None]]:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError("entries are not JSON") from None
        if not isinstance(raw, list):
            raise ValueError("entries are not a list")
        return [_parse_entry(item) for item in raw]

    def _on_summary_part(self, node: str, incarnation: str, seq: int, last: bool, data: bytes) -> None:
        view = self._view(node, incarnation)
        if view.partial is None or view.partial[0] != seq:
            view.partial = (seq, [])
        entries = view.partial[1]
        entries.extend(self._entries(data))
        if len(entries) > MAX_VMS_PER_NODE:
            view.partial = None
            raise ValueError(f"node {node!r} has more than {MAX_VMS_PER_NODE} VMs")
        if not last:
            return
        view.partial = None
        view.dead = False
        names: set[str] = set()
        for info, latest in entries:
            if self._fleet.is_local(info.name):
                continue  # this node serves it (a VM moving here: its own sweep says so)
            names.add(info.name)
            self._put(node, info, latest)
        for name in view.names - names:
            if self._owner_of.get(name) == node:
                del self._owner_of[name]
                self._fleet.drop(name)
        view.names = names

    def _on_status(self, node: str, incarnation: str, data: bytes) -> None:
        try:
            info, latest = _parse_entry(orjson.loads(data))
        except orjson.JSONDecodeError:
            raise ValueError("a status is not JSON") from None
        if self._fleet.is_local(info.name):
            return
        view = self._view(node, incarnation)
        if len(view.names) >= MAX_VMS_PER_NODE and info.name not in view.names:
            raise ValueError(f"node {node!r} has more than {MAX_VMS_PER_NODE} VMs")
        view.names.add(info.name)
        self._put(node, info, latest)

    def _put(self, node: str, info: VMInfo, latest: CpuMemory | None) -> None:
        previous = self._owner_of.get(info.name)
        if previous is not None and previous != node and previous in self._nodes:
            self._nodes[previous].names.discard(info.name)  # it moved to ``node``
        self._owner_of[info.name] = node
        self._fleet.set_remote_latest(info.name, latest)
        self._fleet.put(info)

    def _make_room(self) -> None:
        """Forget a dead node for a new one. Dead views are otherwise kept (their VMs shown
        as ``error`` until the node returns), so names that never come back (crashed nodes
        named after short-lived hosts, or names a Redis writer made up) would fill the
        table and shut out every node after them."""
        dead = next((node for node, view in self._nodes.items() if view.dead), None)
        if dead is None:
            raise ValueError(f"more than {MAX_NODES} nodes")
        log.info("fleet: forgetting dead node %s to make room for another", dead)
        self._forget_node(dead)

    def _forget_node(self, node: str) -> None:
        view = self._nodes.pop(node)
        for name in view.names:
            if self._owner_of.get(name) == node:
                del self._owner_of[name]
                self._fleet.drop(name)

    # Liveness

    async def _read_records(self) -> None:
        """Every VM record in Redis (a dead owner's VMs as ``error``), before the first snapshot."""
        redis = self._relay.redis
        try:
            raw_names = await redis.smembers(wire.VMS_KEY)
            names = sorted(
                n.decode("utf-8", "replace") for n in raw_names if isinstance(n, bytes) and len(n) <= _MAX_NAME_BYTES
            )
            pipe = redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(wire.vm_key(name))
            records = await pipe.execute() if names else []
        except Exception as exc:  # Redis down: the summaries fill the fleet once it is back
            log.warning("fleet: the cluster's VM records are unreadable (%s); waiting for summaries", exc)
            return
        parsed = []
        for name, raw in zip(names, records, strict=True):
            try:
                parsed.append(parse_record(name, raw))
            except (ValueError, TypeError):
                continue
        for info, (node, incarnation) in parsed:
            if node == self._name or self._fleet.is_local(info.name):
                continue
            with contextlib.suppress(ValueError):  # past MAX_NODES
                self._view(node, incarnation).names.add(info.name)
                self._put(node, info, None)
        await self._check_liveness()

    async def _checking(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                await self._check_liveness()
            except Exception as exc:  # Redis down: the relay says so; checked again next time
                log.debug("fleet liveness check skipped: %s", exc)

    async def _check_liveness(self) -> None:
        if self._relay.up_for() < NODE_TTL:
            return  # Redis just came back: live owners re-register within a refresh
        alive = [(node, view) for node, view in self._nodes.items() if not view.dead]
        if not alive:
            return
        values = await self._relay.redis.mget([node_key(node) for node, _ in alive])
        now = time.time()
        for (node, view), value in zip(alive, values, strict=True):
            if not live_incarnation(value, view.incarnation):
                log.info("fleet: node %s is gone; its %d VMs are unavailable", node, len(view.names))
                view.dead = True
                for name in view.names:
                    if self._owner_of.get(name) == node:
                        self._fleet.set_remote_latest(name, None)
                        self._fleet.put(VMInfo(name, VMStatus.ERROR, now, 0.0))
