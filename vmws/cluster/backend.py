"""Any node serves any VM: the local backend for this node's VMs, the relay for the others.

The hub keeps working as on one node: it asks this backend for a VM's status, metrics
and console. For a VM owned by another node the status comes from its record in Redis,
status changes from its ``:out`` channel (subscribed once per node, not per socket),
metrics by asking the owner, and the console is a ``RemoteConsole`` that follows the
owner's ``:con`` stream and ``:out`` channel with the owner's offsets and epoch.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from vmws import protocol
from vmws.backend import (
    Action,
    Backend,
    ConsoleStream,
    MetricsSample,
    StatusListener,
    VMInfo,
    VMStatus,
    check_screen_status,
)
from vmws.cluster import wire
from vmws.cluster.checks import MAX_TIME, number, raise_answer
from vmws.cluster.membership import NODE_TTL, node_key, parse_node_value
from vmws.cluster.relay import Relay, RelayUnavailable
from vmws.cluster.screen_forward import ScreenElsewhere, node_url_of
from vmws.codes import ErrorCode
from vmws.errors import NoScreen, VMNotFound, VMWSError
from vmws.peer import Peer

if TYPE_CHECKING:
    from vmws.cluster.metrics import SharedSamples

__all__ = ["ClusterBackend", "RemoteConsole", "parse_record", "live_incarnation"]

log = logging.getLogger("vmws.cluster")

_REQUEST_TIMEOUT = 10.0
# Output of the owner queued here and not yet read by this node's console: its viewers
# pace the reading and the owner does not wait for them, so past this the copy ends and
# they resume from the history in Redis (as one node cuts off a viewer that falls behind).
FOLLOW_LIMIT_BYTES = 4 * wire.MAX_DATA_BYTES
# A followed VM nobody on this node has asked for in this long, with no socket on it
# here, is no longer followed (its ``:out`` unsubscribed): longer than any socket takes
# from looking the VM up to being registered with the hub (a console join waits 10 s).
FOLLOW_IDLE = 2 * _REQUEST_TIMEOUT
Owner_ = tuple[str, str]  # (node name, incarnation)


class RemoteConsole(ConsoleStream):
    """A console read by another node, followed here with that node's offsets."""

    def __init__(self, vm: str, relay: Relay, on_closed: Callable[[RemoteConsole], None]) -> None:
        self.vm = vm
        self._relay = relay
        self._on_closed = on_closed
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0  # bytes in _chunks: at most FOLLOW_LIMIT_BYTES
        self._early: list[tuple[dict[str, Any], bytes]] = []  # live output before the history is read
        self._ready = False
        self._done = False
        self.epoch = ""
        self.end = 0
        # For the hub: the offset of the first byte read() returns, and the epoch.
        self.relayed_from: tuple[int, str] = (0, "")
        # The output held before joining, in place before any viewer joins (not read()).
        self.history = b""

    async def join(self, timeout: float) -> None:
        """Have the owner open the console, then read the history held in Redis."""
        answer = await self._relay.request(self.vm, {"op": "open"}, timeout=timeout)
        raise_answer(answer)
        offset, epoch = wire.field_int(answer, "o"), wire.field_str(answer, "e", 64)
        try:
            entries = await self._relay.redis.xrange(wire.console_key(self.vm), "-", "+")
        except Exception as exc:
            raise RelayUnavailable(f"the cluster's Redis is unreachable: {type(exc).__name__}") from None
        run: list[tuple[int, bytes]] = []
        for entry_id, fields in entries:
            at, data = _entry(entry_id, fields, epoch)
            if data is None:
                continue
            if run and run[-1][0] + len(run[-1][1]) != at:
                run = []  # a hole (lost with Redis): only what follows it is one history
            run.append((at, data))
        if run and run[0][0] <= offset <= run[-1][0] + len(run[-1][1]):
            start, history = run[0][0], b"".join(data for _, data in run)
        else:
            start, history = offset, b""
        self.epoch, self.end, self.relayed_from = epoch, start + len(history), (start, epoch)
        self.history = history
        self._ready = True
        for header, data in self._early:
            self.feed(header, data)
        self._early.clear()

    def feed(self, header: dict[str, Any], data: bytes) -> None:
        """A message of the owner's ``:out`` about this console."""
        if self._done:
            return
        if not self._ready:
            if len(self._early) < 1000:
                self._early.append((header, data))
            return
        op = header.get("op")
        try:
            offset, epoch = wire.field_int(header, "o"), wire.field_str(header, "e", 64)
        except ValueError as exc:
            log.warning("dropped console output of %s: %s", self.vm, exc)
            return
        if epoch != self.epoch or offset > self.end:
            # The owner restarted (new offsets) or output was lost on the way (Redis went
            # away): this copy ends; its viewers reconnect and resume on the new history.
            self.lose(f"console history of {self.vm!r} changed on its owner node")
            return
        if op == "eof":
            self.finish()
            return
        if offset + len(data) > self.end:
            piece = data[self.end - offset :]
            if self._queued + len(piece) > FOLLOW_LIMIT_BYTES:
                self.lose(
                    f"the console of {self.vm!r} ran more than {FOLLOW_LIMIT_BYTES // 2**20} MiB ahead of "
                    "its viewers on this node: reconnect with ?since= to resume"
                )
                return
            self.end += len(piece)
            self._queued += len(piece)
            self._chunks.put_nowait(piece)

    lost: Callable[[str], None] | None = None  # set by the backend: closes the viewers with 1013

    def lose(self, message: str) -> None:
        if self.lost is not None:
            self.lost(message)
        while not self._chunks.empty():  # nobody reads them now: free them at once
            self._chunks.get_nowait()
        self._queued = 0
        self.finish()

    def finish(self) -> None:
        if not self._done:
            self._done = True
            self._chunks.put_nowait(b"")
            self._on_closed(self)

    async def read(self) -> bytes:
        chunk = await self._chunks.get()
        if not chunk:
            self._chunks.put_nowait(b"")  # every later read sees the end too
        self._queued -= len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        if self._done:
            return
        await self._relay.send_in(self.vm, {"op": "input"}, data)

    async def close(self) -> None:
        self.finish()


def _entry(entry_id: object, fields: object, epoch: str) -> tuple[int, bytes | None]:
    """``(offset, bytes)`` of a ``:con`` entry of ``epoch``; bytes None if it is not one."""
    try:
        raw = entry_id.decode() if isinstance(entry_id, bytes) else ""
        offset = int(raw.partition("-")[0])
        data = fields.get(b"d") if isinstance(fields, dict) else None
        entry_epoch = fields.get(b"e") if isinstance(fields, dict) else None
    except ValueError:
        return 0, None
    if not isinstance(data, bytes) or entry_epoch != epoch.encode():
        return 0, None
    return offset, data


class ClusterBackend(Backend):
    def __init__(self, local: Backend, relay: Relay, *, now: Callable[[], float], command_timeout: float) -> None:
        self.local = local
        self.relay = relay
        self._now = now
        # How long a relayed command may take: the owner's own timeout, and some.
        self._command_wait = command_timeout + 10.0
        self.capabilities = local.capabilities
        self._listeners: list[StatusListener] = []
        self._owners: dict[str, Owner_] = {}  # VMs of other nodes this node follows
        self._asked: dict[str, float] = {}  # followed VMs: when a socket or request last looked one up
        self._consoles: dict[str, RemoteConsole] = {}
        self.on_lost: Callable[[str, str], None] | None = None  # (vm, message): close its sockets
        # (vm, message): close its console's viewers (a followed console ended, not the VM)
        self.on_console_lost: Callable[[str, str], None] | None = None
        self.shared_samples: SharedSamples | None = None  # set once the relay runs (vmws.cluster.metrics)

    async def start(self) -> None:
        await self.local.start()

    async def close(self) -> None:
        await self.local.close()

    async def list(self) -> list[VMInfo]:
        return await self.local.list()

    async def _is_local(self, name: str) -> bool:
        try:
            await self.local.get(name)
        except VMNotFound:
            return False
        return True

    # This node's VMs by name, kept by the owner side (at start and every refresh): the
    # command relay decides without waiting, so commands leave in the order they came.
    local_names: set[str] = set()

    async def get(self, name: str) -> VMInfo:
        try:
            return await self.local.get(name)
        except VMNotFound:
            pass
        record, owner = await self._record(name)
        self._asked[name] = asyncio.get_running_loop().time()
        await self._follow(name, owner)
        return record

    async def _record(self, name: str) -> tuple[VMInfo, Owner_]:
        """``name``'s record and its live owner; raises VMNotFound / RelayUnavailable."""
        try:
            raw = await self.relay.redis.hgetall(wire.vm_key(name))
            if not raw and self.relay.up_for() < NODE_TTL:
                # Redis came back, maybe empty: owners rewrite their records within a refresh
                raise RelayUnavailable(f"the cluster is recovering from a Redis restart: try {name!r} again later")
            if not raw:
                raise VMNotFound(f"no VM named {name!r}")
            info, owner = parse_record(name, raw)
            live = await self.relay.redis.get(node_key(owner[0]))
        except RelayUnavailable:
            raise
        except (VMNotFound, ValueError):  # none, or a record that is not one
            raise VMNotFound(f"no VM named {name!r}") from None
        except Exception:
            raise RelayUnavailable("the cluster's Redis is unreachable: try again later") from None
        if not live_incarnation(live, owner[1]) and self.relay.up_for() < NODE_TTL:
            raise RelayUnavailable(f"the cluster is recovering from a Redis restart: try {name!r} again later")
        if not live_incarnation(live, owner[1]):
            raise RelayUnavailable(f"VM {name!r} is unavailable: its node {owner[0]!r} is gone")
        return info, owner

    async def _follow(self, name: str, owner: Owner_) -> None:
        """Subscribe once to ``name``'s ``:out`` (status, console) for this node's sockets."""
        if self._owners.get(name) == owner:
            return
        self._owners[name] = owner
        await self.relay.listen(wire.out_channel(name), lambda header, data: self._on_out(name, header, data))

    def unfollow(self, name: str) -> Coroutine[Any, Any, None]:
        """Stop following ``name`` now; the returned coroutine unsubscribes, unless a
        socket has followed it again by the time it runs."""
        self._owners.pop(name, None)
        self._asked.pop(name, None)

        async def unsubscribe() -> None:
            if name not in self._owners:
                await self.relay.unlisten(wire.out_channel(name))

        return unsubscribe()

    def refollow(self, name: str, owner: Owner_) -> None:
        """``name`` moved to ``owner`` (a libvirt takeover): same ``:out`` channel, kept."""
        if name in self._owners:
            self._owners[name] = owner

    def followed(self) -> dict[str, Owner_]:
        return dict(self._owners)

    def idle(self, has_sockets: Callable[[str], bool]) -> tuple[str, ...]:
        """Followed VMs with no socket here (``has_sockets``) and not looked up for
        ``FOLLOW_IDLE`` seconds: what to unfollow, so a node follows only what it serves."""
        quiet_since = asyncio.get_running_loop().time() - FOLLOW_IDLE
        return tuple(
            vm
            for vm in self._owners
            if vm not in self._consoles and not has_sockets(vm) and self._asked.get(vm, 0.0) < quiet_since
        )

    def _on_out(self, vm: str, header: dict[str, Any], data: bytes) -> None:
        op = header.get("op")
        if op == "status":
            try:
                info = VMInfo(
                    vm,
                    VMStatus(header.get("status")),
                    number(header.get("changed"), MAX_TIME),
                    number(header.get("uptime"), MAX_TIME),
                )
            except ValueError as exc:
                log.warning("dropped a status of %s: %s", vm, exc)
                return
            for listener in list(self._listeners):
                listener(info)
        elif op == "metrics" and self.shared_samples is not None:
            self.shared_samples.feed(vm, header)
        elif op in ("console", "eof"):
            console = self._consoles.get(vm)
            if console is not None:
                console.feed(header, data)
        elif op == "gone":
            owner = self._owners.get(vm)
            if self.on_lost is not None and owner is not None:
                self.on_lost(vm, f"VM {vm!r} is unavailable: its node {owner[0]!r} left the cluster")

    async def sample(self, name: str) -> MetricsSample:
        if await self._is_local(name):
            return await self.local.sample(name)
        if self.shared_samples is not None:  # the owner's latest publication, when fresh
            published = self.shared_samples.want(name)
            if published is not None:
                return published
        answer = await self.relay.request(name, {"op": "sample"}, timeout=_REQUEST_TIMEOUT)
        raise_answer(answer)
        from vmws.cluster.metrics import parse_sample

        try:
            return parse_sample(answer.get("sample"))
        except ValueError as exc:
            raise VMWSError(f"metrics of {name!r} from its owner node are malformed: {exc}") from None

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        return await self.local.perform(name, action, force=force)  # other nodes' VMs: relay_command

    async def relay_command(self, vm: str, command: protocol.Command, peer: Peer, request_id: str) -> bool:
        """The hub's ``command_relay``: run ``command`` on ``vm``'s owner node."""
        if vm in self.local_names:
            return False

        def forward(answer: dict[str, Any]) -> None:
            """The owner hub's answer, sent on as is once it is seen to be one."""
            message = answer.get("message")
            if not isinstance(message, str) or len(message) > 64 * 1024:
                return
            try:
                parsed = orjson.loads(message)
            except orjson.JSONDecodeError:
                return
            if (
                isinstance(parsed, dict)
                and parsed.get("type") in ("response", "error")
                and isinstance(parsed.get("data"), dict)
                and parsed["data"].get("requestId") == request_id
            ):
                peer.send(message)
            else:
                log.warning("dropped an answer for %s from its owner node: not a response to %s", vm, request_id)

        header = {
            "op": "command",
            "action": command.action.value,
            "force": command.force,
            "requestId": request_id,
            "user": peer.user,
            "session": peer.session_id,
        }
        try:
            answer = await self.relay.request(vm, header, timeout=self._command_wait, on_message=forward)
            raise_answer(answer)
        except VMWSError as exc:  # RelayUnavailable, or the owner refused the request itself
            peer.send(
                protocol.response_message(
                    request_id,
                    False,
                    exc.message,
                    self._now(),
                    code=ErrorCode.UNKNOWN_ERROR,
                    action=command.action.value,
                )
            )
        return True

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        self._listeners.append(listener)
        unsubscribe_local = self.local.subscribe(listener)

        def unsubscribe() -> None:
            unsubscribe_local()
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def open_console(self, name: str) -> ConsoleStream:
        if await self._is_local(name):
            return await self.local.open_console(name)
        await self.get(name)  # a live owner, followed
        console = RemoteConsole(name, self.relay, self._console_closed)
        console.lost = lambda message: self.on_console_lost(name, message) if self.on_console_lost else None
        self._consoles[name] = console
        try:
            await console.join(_REQUEST_TIMEOUT)
        except BaseException:
            console.finish()
            raise
        return console

    async def open_screen(self, name: str) -> socket.socket:
        """This node's VMs are opened here. A screen is never relayed through Redis (a
        frame stream would swamp it): another node's VM raises ``ScreenElsewhere`` with
        its owner's address, for the screen socket to forward to
        (``vmws/cluster/screen_forward.py``), or ``NoScreen`` naming the owner when its
        record holds no address."""
        if await self._is_local(name):
            return await self.local.open_screen(name)
        info, owner = await self._record(name)  # VMNotFound; RelayUnavailable (1013)
        check_screen_status(info)
        try:
            raw = await self.relay.redis.get(node_key(owner[0]))
        except Exception:
            raise RelayUnavailable("the cluster's Redis is unreachable: try again later") from None
        url = node_url_of(raw, owner[0])
        if url is not None:
            raise ScreenElsewhere(owner[0], url)
        raise NoScreen(f"this VM's screen is served only by its own node {owner[0]!r}: connect to that node")

    def _console_closed(self, console: RemoteConsole) -> None:
        if self._consoles.get(console.vm) is console:
            del self._consoles[console.vm]

    def lose(self, vm: str) -> None:
        """``vm``'s owner is gone: end its console here."""
        console = self._consoles.get(vm)
        if console is not None:
            console.finish()


def parse_record(name: str, raw: dict[bytes, bytes]) -> tuple[VMInfo, Owner_]:
    """A ``vmws:vm:{NAME}`` hash, checked (ValueError when it is not one)."""

    def text(key: bytes, limit: int = 255) -> str:
        value = raw.get(key)
        if not isinstance(value, bytes) or len(value) > limit:
            raise ValueError(f"record field {key!r} missing or too long")
        return value.decode("utf-8", "replace")

    status = VMStatus(text(b"status", 16))
    changed, uptime = number(float(text(b"changed", 40)), MAX_TIME), number(float(text(b"uptime", 40)), MAX_TIME)
    return VMInfo(name, status, changed, uptime), (text(b"owner"), text(b"incarnation", 64))


def live_incarnation(raw: object, incarnation: str) -> bool:
    """Whether a ``vmws:node:NAME`` value says that node lives as ``incarnation``."""
    value = parse_node_value(raw)
    return value is not None and value.get("incarnation") == incarnation
