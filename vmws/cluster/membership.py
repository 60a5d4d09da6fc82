"""A node's liveness in Redis: ``vmws:node:NAME`` with a TTL, refreshed.

Each start draws a new incarnation id and takes the name unconditionally, so a node
restarted under its old name (after ``kill -9``, while the old key still lives)
replaces its dead incarnation at once. ``vmws:nodes`` (a sorted set, name → last seen)
lists the nodes without ``SCAN``; a node whose key has expired is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from vmws import __version__

__all__ = [
    "Membership",
    "NODE_TTL",
    "REFRESH_INTERVAL",
    "NODES_KEY",
    "EVENTS_CHANNEL",
    "node_key",
    "parse_node_value",
]

log = logging.getLogger("vmws")

NODE_TTL = 10  # seconds without a refresh after which a node is dead
REFRESH_INTERVAL = 3.0
FORGET_AFTER = 3600.0  # a dead node leaves vmws:nodes after an hour
NODES_KEY = "vmws:nodes"
EVENTS_CHANNEL = "vmws:nodes:events"

# Delete the key only if it is still ours (a newer incarnation may have taken the name).
_LEAVE = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['incarnation'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


def node_key(name: str) -> str:
    return f"vmws:node:{name}"


def parse_node_value(raw: object) -> dict[str, Any] | None:
    """A ``vmws:node:NAME`` value read from Redis as a dict; None when it is not one."""
    if not isinstance(raw, bytes) or len(raw) > 4096:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class Membership:
    def __init__(
        self,
        redis: Any,
        name: str,
        count_vms: Callable[[], Awaitable[int]],
        *,
        url: str | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.name = name
        self.url = url  # where the other nodes reach this one (--advertise-url)
        self.incarnation = uuid.uuid4().hex
        self.count_vms = count_vms
        self._wall = wall
        self.started = wall()
        self.state = "down"
        self.error: str | None = "not registered yet"
        self._registered = False  # since the last outage
        self._task: asyncio.Task[None] | None = None
        self._leave = redis.register_script(_LEAVE)

    async def start(self) -> None:
        """Register now (before the node listens), then keep refreshing."""
        await self.refresh()
        if self.state != "up":
            log.warning(
                "redis unreachable at start-up (%s): serving this node's VMs; joining the cluster when it answers",
                self.error,
            )
        self._task = asyncio.get_running_loop().create_task(self._refreshing())

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            await self.refresh()

    async def refresh(self) -> None:
        from redis.exceptions import RedisError

        try:
            vms = await self.count_vms()
            now = self._wall()
            value = orjson.dumps(
                {
                    "incarnation": self.incarnation,
                    "vms": vms,
                    "seen": now,
                    "started": self.started,
                    "version": __version__,
                    **({"url": self.url} if self.url else {}),
                }
            )
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(node_key(self.name), value, ex=NODE_TTL, get=True)
            pipe.zadd(NODES_KEY, {self.name: now})
            if not self._registered:
                pipe.publish(
                    EVENTS_CHANNEL,
                    orjson.dumps({"event": "joined", "node": self.name, "incarnation": self.incarnation}),
                )
            previous = (await pipe.execute())[0]
        except (RedisError, OSError) as exc:
            if self.state == "up":
                log.warning("redis unreachable: node %s keeps serving its own VMs: %s", self.name, exc)
            self.state, self.error, self._registered = "down", str(exc) or type(exc).__name__, False
            return
        other = orjson.loads(previous).get("incarnation") if previous else None
        if not self._registered:
            if other and other != self.incarnation:
                log.info("node %s replaces its previous incarnation %s", self.name, other)
            log.info("node %s registered in the cluster (incarnation %s)", self.name, self.incarnation)
        elif other != self.incarnation and other is not None:
            log.error(
                "another live process uses the node name %s (incarnation %s); give each node its own --node-name",
                self.name,
                other,
            )
        self.state, self.error, self._registered = "up", None, True

    async def nodes(self) -> list[dict[str, Any]]:
        """Every live node, by name (raises ``RedisError`` while Redis is down)."""
        names = [n.decode() for n in await self.redis.zrange(NODES_KEY, 0, -1)]
        values = await self.redis.mget([node_key(n) for n in names]) if names else []
        live, gone = [], []
        seen = dict(zip(names, await self.redis.zmscore(NODES_KEY, names) if names else [], strict=True))
        for name, raw in zip(names, values, strict=True):
            if raw is None:
                last = seen.get(name) or 0.0
                if last < self._wall() - FORGET_AFTER:
                    gone.append(name)
                continue
            data = orjson.loads(raw)
            live.append(
                {
                    "name": name,
                    "vms": data.get("vms"),
                    "lastSeen": data.get("seen"),
                    "incarnation": data.get("incarnation"),
                    "version": data.get("version"),
                    "url": data.get("url"),
                    "self": name == self.name and data.get("incarnation") == self.incarnation,
                }
            )
        if gone:
            await self.redis.zrem(NODES_KEY, *gone)
        return live

    async def stop(self) -> None:
        """Leave at once (no wait for the TTL) if Redis answers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._leave(keys=[node_key(self.name)], args=[self.incarnation]), 2)
