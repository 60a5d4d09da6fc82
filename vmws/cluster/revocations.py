"""Revocations shared by every node through the cluster's Redis.

Each entry is a key, ``vmws:revoked:sub:SUB`` or ``vmws:revoked:jti:JTI``, holding its
expiry and expiring with it (``PXAT``), so Redis forgets it when it no longer matters
and a node starting (or reconnecting) reads those in force with one ``SCAN``. Each new
entry is also published on ``vmws:revocations``: every node adds it to its in-memory
list (the check on each credential stays in memory, no Redis round trip per
connection) and closes the sessions it matches (4001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from vmws.revocations import Revocation, Revocations

__all__ = ["RevocationSync", "CHANNEL", "KEY_PREFIX", "stop_task"]

log = logging.getLogger("vmws")

CHANNEL = "vmws:revocations"
KEY_PREFIX = "vmws:revoked:"
_RETRY = 1.0  # seconds between attempts to resubscribe while Redis is away


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background loop and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _key(entry: Revocation) -> str:
    return f"{KEY_PREFIX}sub:{entry.sub}" if entry.sub is not None else f"{KEY_PREFIX}jti:{entry.jti}"


class RevocationSync:
    def __init__(
        self, redis: Any, revocations: Revocations, origin: str, on_remote: Callable[[Revocation, str], object]
    ) -> None:
        self.redis = redis
        self.revocations = revocations
        self.origin = origin  # this node's incarnation: its own messages come back to it
        self.on_remote = on_remote  # an entry from another node: close what it matches, audit it
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="revocations")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def share(self, entry: Revocation, by: str) -> None:
        """Store and publish ``entry`` (raises redis' errors / OSError when Redis is away)."""
        payload = orjson.dumps(
            {"sub": entry.sub, "jti": entry.jti, "expiresAt": entry.expires_at, "by": by, "origin": self.origin}
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(entry), repr(entry.expires_at), pxat=int(entry.expires_at * 1000))
            pipe.publish(CHANNEL, payload)
            await pipe.execute()

    async def _load(self) -> None:
        """Every entry in force in Redis, into this node's list."""
        async for raw in self.redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
            key = raw.decode("utf-8", "replace")
            value = await self.redis.get(raw)
            if value is None:
                continue  # expired between the scan and the get
            kind, _, name = key[len(KEY_PREFIX) :].partition(":")
            self._add(name if kind == "sub" else None, name if kind == "jti" else None, float(value))

    def _add(self, sub: str | None, jti: str | None, expires_at: float) -> Revocation | None:
        try:
            return self.revocations.add(sub=sub, jti=jti, expires_at=expires_at)
        except ValueError as exc:  # expired meanwhile, or the list is full: said once, not fatal
            log.info("revocation from the cluster not kept: %s", exc)
            return None

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                await self._load()  # after subscribing: nothing published meanwhile is missed
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._received(message.get("data"))
            except (RedisError, OSError) as exc:
                log.warning("revocations: the cluster's Redis is unreachable (%s); retrying", exc)
                await asyncio.sleep(_RETRY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _received(self, data: Any) -> None:
        try:
            body = orjson.loads(data)
            if body["origin"] == self.origin:
                return
            sub, jti, by = body["sub"], body["jti"], str(body["by"])
            expires_at = float(body["expiresAt"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("revocations: ignored a malformed message on %s", CHANNEL)
            return
        entry = self._add(sub, jti, expires_at)
        if entry is not None:
            self.on_remote(entry, by)
