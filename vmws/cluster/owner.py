"""The owner's side of the relay: what a node does for the VMs it owns.

- Keeps ``vmws:vm:{NAME}`` (status, owner, incarnation) current for each of them: on
  every status change and every refresh (so a Redis restarted empty is refilled).
- Publishes each status change once on the VM's ``:out``; each console batch (what the
  console channel read in one go) is appended to the ``:con`` stream (trimmed to the
  scrollback; entry id = the batch's byte offset) and published on ``:out``.
- Serves what other nodes ask on the VM's ``:in``: commands (run through this node's
  hub: one at a time per VM, the per-user cap here), opening the console, console
  input (in the order Redis received it, exactly once); metrics samples and history
  are served by ``vmws.cluster.metrics`` and ``vmws.cluster.history`` (``services``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from vmws import protocol
from vmws.backend import Action, Backend, VMInfo
from vmws.cluster import wire
from vmws.cluster.relay import Relay
from vmws.console_channel import ConsoleChannel
from vmws.errors import VMWSError
from vmws.hub import Hub

__all__ = ["Owner", "RemotePeer"]

log = logging.getLogger("vmws.cluster")


class RemotePeer:
    """A client on another node, as the hub sees it: what the hub sends it goes back to
    that node as an answer to its request."""

    pending_bytes = 0
    closing = False

    def __init__(self, relay: Relay, node: str, rid: str, user: str, session_id: str) -> None:
        self._relay, self._node, self._rid = relay, node, rid
        self.user, self.session_id = user, session_id
        self.last_seen = asyncio.get_running_loop().time()

    def send(self, text: str, *, droppable: bool = False) -> None:
        self._relay.reply(self._node, self._rid, {"more": True, "message": text})

    def ping(self) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


class Owner:
    def __init__(
        self, relay: Relay, backend: Backend, hub: Hub, name: str, incarnation: str, scrollback_bytes: int
    ) -> None:
        self.relay, self.backend, self.hub = relay, backend, hub
        self.name, self.incarnation = name, incarnation
        self.scrollback_bytes = scrollback_bytes
        self.vms: set[str] = set()
        self._stream_epochs: dict[str, str] = {}  # the epoch each :con stream holds
        # The clients of relayed commands not yet finished, by (node, request id).
        self._remote_peers: dict[tuple[str, str], RemotePeer] = {}
        # More requests on ``:in``, served by other modules (metrics, history): op ->
        # handler(vm, node, request id, header, data).
        self.services: dict[str, Callable[[str, str, str, dict[str, Any], bytes], None]] = {}
        self._unsubscribe = backend.subscribe(self._on_status)
        hub.console_output = self._on_console_output

    async def start(self) -> None:
        """Write every local VM's record before the node listens, then take them up."""
        infos = await self.backend.list()
        pipe = self.relay.redis.pipeline(transaction=False)
        for info in infos:
            pipe.hset(wire.vm_key(info.name), mapping=self._record(info))
            pipe.sadd(wire.VMS_KEY, info.name)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis down at start-up: the refresh writes them later
            log.warning("VM records not written (Redis unreachable: %s); retrying every refresh", exc)
        await self.refresh()

    async def refresh(self) -> None:
        """Take up every local VM (listen on its ``:in``) and rewrite its record."""
        infos = await self.backend.list()
        for info in infos:
            if info.name not in self.vms:
                self.vms.add(info.name)
                await self.relay.listen(wire.in_channel(info.name), self._handler(info.name))
            self._write_record(info)

    async def take(self, vm: str) -> None:
        """A VM this node has just come to own (a libvirt lease): serve its ``:in`` and
        write its record now. Watchers elsewhere learn a status only if it changed while
        the VM had no owner (they must see no change that did not happen)."""
        info = await self.backend.get(vm)
        before: Any = None
        try:
            before = await self.relay.redis.hget(wire.vm_key(vm), "status")
        except Exception as exc:  # Redis down: the refresh writes the record later
            log.debug("record of %s unread before taking it over: %s", vm, exc)
        if vm not in self.vms:
            self.vms.add(vm)
            await self.relay.listen(wire.in_channel(vm), self._handler(vm))
        self._write_record(info)
        if before is not None and before != info.status.value.encode():
            self._on_status(info)

    async def drop(self, vm: str, *, forget: bool = False) -> None:
        """A VM this node no longer owns: another node writes its record from now on, or,
        with ``forget`` (its name is on two hosts: nobody serves it), the record goes."""
        if vm in self.vms:
            self.vms.discard(vm)
            await self.relay.unlisten(wire.in_channel(vm))
        self._stream_epochs.pop(vm, None)
        if forget:
            self.relay.enqueue("delete", wire.vm_key(vm))
            self.relay.enqueue("srem", wire.VMS_KEY, vm)
            self.relay.enqueue("publish", wire.out_channel(vm), wire.encode({"op": "gone", "owner": self.name}))

    def continues(self, vm: str, epoch: str) -> None:
        """``vm``'s console continues ``epoch`` from the ``:con`` stream (taken over):
        the stream is that history, not one to empty."""
        self._stream_epochs[vm] = epoch

    async def stop(self) -> None:
        """Leave cleanly: the records go (the VMs leave the cluster's listing)."""
        self._unsubscribe()
        pipe = self.relay.redis.pipeline(transaction=False)
        for vm in self.vms:
            pipe.delete(wire.vm_key(vm))
            pipe.srem(wire.VMS_KEY, vm)
            pipe.publish(wire.out_channel(vm), wire.encode({"op": "gone", "owner": self.name}))
        try:
            await asyncio.wait_for(pipe.execute(), 2)
        except Exception as exc:  # Redis down: the records stay, listed as error until we are back
            log.warning("VM records not removed at shutdown: %s", exc)

    def _write_record(self, info: VMInfo) -> None:
        self.relay.enqueue("hset", wire.vm_key(info.name), mapping=self._record(info))
        self.relay.enqueue("sadd", wire.VMS_KEY, info.name)

    def _record(self, info: VMInfo) -> dict[str, str]:
        record = {
            "status": info.status.value,
            "owner": self.name,
            "incarnation": self.incarnation,
            "changed": repr(info.last_state_change),
            "uptime": repr(info.uptime),
        }
        host_of = getattr(self.backend, "host_of", None)
        host = host_of(info.name) if callable(host_of) else None
        if host:
            # A libvirt VM: other candidates may take it over when this node goes.
            record["host"] = host
        return record

    def _on_status(self, info: VMInfo) -> None:
        if info.name not in self.vms:
            return
        self._write_record(info)
        self.relay.enqueue(
            "publish",
            wire.out_channel(info.name),
            wire.encode(
                {
                    "op": "status",
                    "status": info.status.value,
                    "changed": info.last_state_change,
                    "uptime": info.uptime,
                }
            ),
        )

    def _on_console_output(self, channel: ConsoleChannel, offset: int, chunk: bytes) -> None:
        vm, epoch = channel.vm, channel.epoch or ""
        if vm not in self.vms:
            return  # a console relayed from its owner: that node publishes it
        if not chunk:
            self.relay.enqueue("publish", wire.out_channel(vm), wire.encode({"op": "eof", "o": offset, "e": epoch}))
            return
        if self._stream_epochs.get(vm) != epoch:
            # A new history (this process's first console of the VM): the old entries
            # count in another process's offsets.
            self._stream_epochs[vm] = epoch
            self.relay.enqueue("delete", wire.console_key(vm))
        key = wire.console_key(vm)
        for start in range(0, len(chunk), wire.MAX_DATA_BYTES):
            piece = chunk[start : start + wire.MAX_DATA_BYTES]
            at = offset + start
            self.relay.enqueue(
                "xadd",
                key,
                {"d": piece, "e": epoch},
                id=f"{at}-1",
                minid=str(max(0, at + len(piece) - self.scrollback_bytes)),
                approximate=False,
            )
            self.relay.enqueue(
                "publish", wire.out_channel(vm), wire.encode({"op": "console", "o": at, "e": epoch}, piece)
            )

    # Requests from other nodes

    def _handler(self, vm: str) -> Any:
        def handle(header: dict[str, Any], data: bytes) -> None:
            try:
                op = wire.field_str(header, "op", 16)
                node = wire.field_str(header, "node")
                rid = wire.field_str(header, "id", 64) if op not in ("input", "watch") else ""
            except ValueError as exc:
                log.warning("dropped a request for %s: %s", vm, exc)
                return
            if op in self.services:
                self.services[op](vm, node, rid, header, data)
            elif op == "cancel":
                peer = self._remote_peers.get((node, rid))
                if peer is not None:
                    self.hub.unregister(peer)  # its command is dropped unless it has started
            elif op == "input":
                channel = self.hub.open_console_channel(vm)
                if channel is not None:
                    channel.write(data.decode("utf-8", "replace"))
            elif op in ("command", "open"):
                self.hub.spawn(self._serve(vm, op, node, rid, header))
            else:
                log.warning("dropped a request for %s: unknown op %.20r", vm, op)

        return handle

    async def _serve(self, vm: str, op: str, node: str, rid: str, header: dict[str, Any]) -> None:
        try:
            if op == "command":
                action = Action(wire.field_str(header, "action", 16))
                force = header.get("force") is True
                request_id = wire.field_str(header, "requestId", 256)
                peer = RemotePeer(
                    self.relay, node, rid, wire.field_str(header, "user", 4096), wire.field_str(header, "session", 64)
                )
                self._remote_peers[(node, rid)] = peer
                try:
                    await self.hub.run_command(vm, protocol.Command(action, request_id, force), peer)
                finally:
                    del self._remote_peers[(node, rid)]
                self.relay.reply(node, rid, {"ok": True})
            else:  # open: the console runs here, with or without a viewer on this node
                channel = await self.hub.console(vm)
                offset = self.hub.console_end(vm)
                self.relay.reply(node, rid, {"ok": True, "o": offset, "e": channel.epoch or ""})
        except VMWSError as exc:
            self.relay.reply(
                node, rid, {"ok": False, "kind": type(exc).__name__, "code": exc.code, "message": exc.message}
            )
        except ValueError as exc:
            log.warning("refused a malformed %s request for %s from %s: %s", op, vm, node, exc)
            self.relay.reply(
                node,
                rid,
                {
                    "ok": False,
                    "kind": "VMWSError",
                    "code": "UNKNOWN_ERROR",
                    "message": f"the owner node refused a malformed request: {exc}",
                },
            )
        except Exception:
            log.exception("serving a %s request for %s failed", op, vm)
            self.relay.reply(
                node,
                rid,
                {
                    "ok": False,
                    "kind": "VMWSError",
                    "code": "UNKNOWN_ERROR",
                    "message": "internal error on the owner node",
                },
            )
