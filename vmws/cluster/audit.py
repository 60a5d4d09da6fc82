"""The audit events of every node, in one Redis stream, for ``GET /api/audit`` on any node.

Each node appends its events to ``vmws:audit`` (capped near ``--audit-ring-size``
entries, ``MAXLEN ~``) in batches from a background task, so recording an event never
waits on Redis; while Redis is away its events wait in a bounded queue (the oldest
dropped first) and stay in the node's own ring and audit file. A query reads the
stream newest first and filters as the ring does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import orjson

from vmws.audit import select
from vmws.cluster.revocations import stop_task

__all__ = ["SharedAudit", "STREAM"]

log = logging.getLogger("vmws.audit")

STREAM = "vmws:audit"
_RETRY = 1.0  # seconds before pushing again after Redis failed


class SharedAudit:
    def __init__(self, redis: Any, size: int) -> None:
        self.redis = redis
        self.size = size
        self._pending: deque[tuple[float, dict[str, Any]]] = deque(maxlen=size)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, at: float, event: dict[str, Any]) -> None:
        self._pending.append((at, event))
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._push_loop(), name="audit-stream")

    async def stop(self) -> None:
        """Push what is pending (if Redis answers), then stop."""
        await stop_task(self._task)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._push(), timeout=2.0)

    async def _push_loop(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._push()
            except (RedisError, OSError) as exc:
                log.warning("audit: the cluster's Redis is unreachable (%s); %d events wait", exc, len(self._pending))
                await asyncio.sleep(_RETRY)
                self._wake.set()

    async def _push(self) -> None:
        batch = list(self._pending)
        if not batch:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for at, event in batch:
                pipe.xadd(STREAM, {"at": repr(at), "event": orjson.dumps(event)}, maxlen=self.size, approximate=True)
            await pipe.execute()
        for _ in batch:  # only what was sent: events recorded meanwhile stay queued
            self._pending.popleft()

    async def query(self, *, vm: str | None, user: str | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` events of every node matching the filters, oldest first
        (raises redis' errors / OSError when Redis is away)."""
        entries = await self.redis.xrevrange(STREAM, count=self.size)
        pairs = [(float(fields[b"at"]), orjson.loads(fields[b"event"])) for _, fields in entries]
        # Nodes push in batches (later still after an outage): the stream's order is only
        # roughly the events' order, so sort by their own time.
        pairs.sort(key=lambda pair: pair[0], reverse=True)
        return select(pairs, vm=vm, user=user, since=since, limit=limit)
