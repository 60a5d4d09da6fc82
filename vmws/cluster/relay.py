"""This node's line to the others through Redis: one pub/sub connection, an ordered
outbox, and requests to a VM's owner answered on this node's reply channel.

- One pub/sub connection per node, whatever the number of sockets: a handler per
  channel (a VM's ``:out`` while this node has sockets on it, a local VM's ``:in``,
  this node's reply channel). If Redis goes away the connection is rebuilt, every
  channel subscribed again, and ``on_reconnect`` told (what was published meanwhile
  is lost: the console followers catch up from the stream).
- The outbox keeps one order for everything this node publishes (a console's chunks,
  the answers to a command) and sends whatever has gathered in one write on its own
  connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from vmws.cluster import wire
from vmws.errors import VMWSError

__all__ = ["Relay", "RelayUnavailable", "Handler", "channel_kind"]

log = logging.getLogger("vmws.cluster")

Handler = Callable[[dict[str, Any], bytes], None]
_OUTBOX_LIMIT = 10_000  # commands waiting for Redis; past it new ones are dropped (logged)


def channel_kind(channel: str) -> str:
    """A pub/sub channel's kind, from a small fixed set (a metric label, never a VM name)."""
    if channel.endswith(":in"):
        return "request"  # to a VM's owner: commands, console input, metrics leases
    if channel.endswith(":out"):
        return "output"  # from a VM's owner: status, console batches, metrics
    if channel.endswith(":reply"):
        return "reply"
    if channel == "vmws:fleet":
        return "fleet"
    return "other"


class RelayUnavailable(VMWSError):
    """What needs another node cannot be done now: close 1013 (try again later)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        from vmws.codes import CloseCode

        self.close_code = CloseCode.TRY_AGAIN_LATER


class Relay:
    def __init__(self, redis: Any, node: str) -> None:
        self.redis = redis
        self.node = node
        self.on_reconnect: Callable[[], None] | None = None
        self._handlers: dict[str, Handler] = {}
        self._pubsub: Any = None
        self._broken = False
        self._pending: dict[str, tuple[asyncio.Queue[dict[str, Any]], str]] = {}
        # (command, args, kwargs, a future for its result or None)
        self._outbox: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]] = []
        self._outbox_ready = asyncio.Event()
        self._outbox_dropping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: Any = None  # the outbox's own connection (made on first use)
        # Records commands as redis-py's methods spell them; never executed.
        self._recorder: Any = redis.pipeline(transaction=False)
        self._up_since = 0.0  # loop time since Redis answers again after a break
        # Messages published and received, by (direction, kind): vmws_cluster_messages_total.
        self.counts: dict[tuple[str, str], int] = {}

    def up_for(self) -> float:
        """Seconds since Redis answers again after a break (infinite if it never broke;
        0 while it is broken)."""
        return 0.0 if self._broken else asyncio.get_running_loop().time() - self._up_since

    async def start(self) -> None:
        self._up_since = float("-inf")  # what Redis holds at start-up is the cluster's
        self._pubsub = self.redis.pubsub()
        await self.listen(wire.reply_channel(self.node), self._on_reply)
        self._tasks = [
            asyncio.create_task(self._reading(), name="relay-read"),
            asyncio.create_task(self._writing(), name="relay-write"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.disconnect()

    # Subscriptions

    async def listen(self, channel: str, handler: Handler) -> None:
        new = channel not in self._handlers
        self._handlers[channel] = handler
        if new and not self._broken:
            try:
                await self._pubsub.subscribe(channel)
            except Exception as exc:  # RedisError/OSError: subscribed again on reconnect
                self._fail(exc)

    async def unlisten(self, channel: str) -> None:
        if self._handlers.pop(channel, None) is not None and not self._broken:
            try:
                await self._pubsub.unsubscribe(channel)
            except Exception as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self._broken:
            log.warning(
                "cluster relay lost Redis (%s): other nodes' VMs are unavailable until it is back",
                exc or type(exc).__name__,
            )
        self._broken = True

    async def _reading(self) -> None:
        while True:
            if self._broken:
                await asyncio.sleep(1.0)
                await self._reconnect()
                continue
            try:
                response = await self._read_pubsub()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                continue
            if response is None:
                continue
            raw_channel, data = response
            channel = raw_channel.decode("utf-8", "replace") if isinstance(raw_channel, bytes) else ""
            handler = self._handlers.get(channel)
            decoded = wire.decode(data, channel[:300])
            if handler is None or decoded is None:
                continue
            self._count("received", channel)
            try:
                handler(*decoded)
            except Exception:
                log.exception("handling a message on %s failed", channel[:300])

    async def _read_pubsub(self) -> tuple[object, object] | None:
        """The next published message, ``(channel, data)``; None for anything else.

        Read off the subscription's connection itself: ``PubSub.get_message`` wraps each
        read in a health check, a retry and a timeout, and builds a dict per message,
        about as much as the read (measured: docs/cluster.md). Replies to (un)subscribe
        still go through redis-py, which keeps its record of the subscriptions."""
        conn = self._pubsub.connection
        if conn is None:  # nothing subscribed yet (the reply channel is, from start())
            await asyncio.sleep(0.1)
            return None
        # math.inf: no timeout for this read (redis-py 8.1; before it, a timeout that never fires)
        response = await conn.read_response(timeout=math.inf, push_request=True)
        if isinstance(response, list) and len(response) == 3 and response[0] == b"message":
            return response[1], response[2]
        await self._pubsub.handle_message(response, ignore_subscribe_messages=True)
        return None

    async def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        self._pubsub = self.redis.pubsub()
        try:
            await self._pubsub.subscribe(*self._handlers)
            await self._pubsub.ping()
        except Exception:
            return  # still down: try again in a second
        self._broken = False
        self._up_since = asyncio.get_running_loop().time()
        log.info("cluster relay reconnected to Redis (%d channels)", len(self._handlers))
        for queue, _ in self._pending.values():  # their answers may have been lost
            queue.put_nowait({"op": "reply", "lost": True})
        if self.on_reconnect is not None:
            self.on_reconnect()

    # Publishing

    def enqueue(self, command: str, *args: Any, result: asyncio.Future[Any] | None = None, **kwargs: Any) -> None:
        """Run a Redis command after every one enqueued before it; its answer goes to
        ``result`` if given (an exception there when Redis failed or the outbox is full)."""
        if len(self._outbox) >= _OUTBOX_LIMIT:
            if not self._outbox_dropping:
                self._outbox_dropping = True
                log.warning("cluster relay: %d messages wait for Redis; dropping new ones", _OUTBOX_LIMIT)
            if result is not None:
                result.set_exception(RelayUnavailable("the cluster's Redis does not keep up: try again later"))
            return
        self._outbox.append((command, args, kwargs, result))
        self._outbox_ready.set()
        if command == "publish":
            self._count("sent", args[0])

    def _count(self, direction: str, channel: str) -> None:
        key = (direction, channel_kind(channel))
        self.counts[key] = self.counts.get(key, 0) + 1

    async def _writing(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            self._outbox_dropping = False
            results = await self._send(batch)
            for (_, _, _, result), value in zip(batch, results, strict=True):
                if result is None or result.done():
                    continue
                if isinstance(value, Exception):
                    result.set_exception(value)
                else:
                    result.set_result(value)

    async def _send(
        self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]]
    ) -> list[Any]:
        """Send ``batch`` in one write on the outbox's own connection and read its
        replies (an exception in place of a command's reply when Redis refused it).

        Measured on the "lines" workload (a batch per small console output): a
        ``Pipeline`` per batch (its construction, the pool's checkout and release, its
        retry and observability wrappers) cost about twice the packing and parsing
        themselves, so the outbox packs with its connection's packer and reads the
        replies itself."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.redis.connection_pool.make_connection()
        try:
            await conn.send_packed_command(conn.pack_commands([self._args(*entry[:3]) for entry in batch]))
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as exc:  # this command refused; the replies stay in step
                    results.append(exc)
            return results
        except asyncio.CancelledError:
            await conn.disconnect(nowait=True)  # replies may be left unread: never reuse it
            raise
        except Exception as exc:  # RedisError/OSError: the connection is dropped, the next batch reconnects
            self._fail(exc)
            await conn.disconnect(nowait=True)
            return [RelayUnavailable("the cluster's Redis is unreachable: try again later")] * len(batch)

    def _args(self, command: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The wire arguments of one command, as redis-py's command method builds them."""
        if command == "publish" and not kwargs:
            return ("PUBLISH", *args)  # the common case: console batches, input, answers
        getattr(self._recorder, command)(*args, **kwargs)
        wire_args: tuple[Any, ...] = self._recorder.command_stack.pop()[0]
        return wire_args

    # Requests to a VM's owner

    async def request(
        self,
        vm: str,
        header: dict[str, Any],
        data: bytes = b"",
        *,
        timeout: float,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send ``header`` to ``vm``'s owner on its ``:in`` channel (at once, in order with
        everything this node publishes) and return its final answer (earlier ones, marked ``more``, go to ``on_message``). Raises
        ``RelayUnavailable`` when nobody owns it or no answer comes in ``timeout``."""
        if self._broken:
            raise RelayUnavailable("the cluster's Redis is unreachable: try again later")
        rid = uuid.uuid4().hex
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending[rid] = (queue, vm)
        try:
            # Through the outbox, before any wait: requests leave in the order they were
            # made (one socket's commands run in the order it sent them).
            published: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.enqueue(
                "publish",
                wire.in_channel(vm),
                wire.encode({**header, "id": rid, "node": self.node}, data),
                result=published,
            )
            try:
                receivers = await published
            except Exception:
                raise RelayUnavailable("the cluster's Redis is unreachable: try again later") from None
            if not receivers:
                raise RelayUnavailable(f"VM {vm!r} has no live owner node: try again later")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                try:
                    answer = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise RelayUnavailable(f"the owner node of {vm!r} did not answer in {timeout:g}s") from None
                if answer.get("lost"):
                    raise RelayUnavailable("the cluster's Redis went away while waiting for the answer")
                if answer.get("more"):
                    if on_message is not None:
                        on_message(answer)
                    continue
                return answer
        except asyncio.CancelledError:
            # Whoever asked is gone: the owner drops the request if it has not started.
            self.enqueue("publish", wire.in_channel(vm), wire.encode({"op": "cancel", "id": rid, "node": self.node}))
            raise
        finally:
            self._pending.pop(rid, None)

    def _on_reply(self, header: dict[str, Any], data: bytes) -> None:
        rid = header.get("id")
        pending = self._pending.get(rid) if isinstance(rid, str) else None
        if pending is not None:
            pending[0].put_nowait({**header, "data": data})  # bytes: never from the JSON header

    def reply(self, node: str, rid: str, header: dict[str, Any]) -> None:
        """Answer request ``rid`` of ``node`` (in order with everything else published)."""
        self.enqueue("publish", wire.reply_channel(node), wire.encode({**header, "op": "reply", "id": rid}))

    async def send_in(self, vm: str, header: dict[str, Any], data: bytes = b"") -> None:
        """One message to ``vm``'s owner, no answer (console input)."""
        if self._broken:
            raise RelayUnavailable("the cluster's Redis is unreachable")
        self.enqueue("publish", wire.in_channel(vm), wire.encode({**header, "node": self.node}, data))
