"""This node's place in the cluster: its name, its Redis, its membership, its tickets.

Without ``--redis-url`` the node is alone (the embedded default): tickets in memory,
``/api/cluster`` lists this node only. See ``docs/cluster.md``.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from vmws.auth import TokenVerifier
from vmws.backend import Backend
from vmws.cluster.membership import Membership
from vmws.cluster.redis_url import redact
from vmws.config import Config
from vmws.tickets import Authenticator, ClusterAuthenticator, RedisTicketStore, TicketStore

__all__ = ["Cluster", "connect_redis"]

log = logging.getLogger("vmws")

REDIS_TIMEOUT = 2.0  # seconds; a Redis that does not answer in that time counts as down


def connect_redis(url: str) -> Any:
    """A ``redis.asyncio`` client that fails fast (no retries: callers answer 503 / 1013
    and the membership loop retries on its own)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0), health_check_interval=30,
    )


class Cluster:
    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.name = config.node_name or ""
        self.redis: Any = connect_redis(config.redis_url) if config.redis_url else None
        self.membership: Membership | None = None
        self.started = time.time()

    @property
    def embedded(self) -> bool:
        return self.redis is None

    def authenticator(self, verifier: TokenVerifier) -> Authenticator:
        if self.redis is None:
            return Authenticator(verifier, TicketStore(self.config.ticket_ttl))
        return ClusterAuthenticator(verifier, RedisTicketStore(self.redis, self.config.ticket_ttl))

    async def _vm_count(self) -> int:
        return len(await self.backend.list())

    async def start(self, port: int) -> None:
        """Called once the port is bound and before connections are accepted."""
        self.name = self.config.node_name or f"{socket.gethostname()}:{port}"
        if self.redis is None:
            return
        log.info("node %s joining the cluster at %s", self.name, redact(self.config.redis_url or ""))
        self.membership = Membership(self.redis, self.name, self._vm_count)
        await self.membership.start()

    async def stop(self) -> None:
        if self.membership is not None:
            await self.membership.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def snapshot(self) -> dict[str, Any]:
        """What ``GET /api/cluster`` answers."""
        from redis.exceptions import RedisError

        me = {"name": self.name, "vms": await self._vm_count(), "lastSeen": time.time(), "self": True}
        if self.membership is None:
            return {"node": self.name, "incarnation": None, "redis": {"state": "none", "url": None, "error": None},
                    "nodes": [{**me, "incarnation": None}], "conflicts": []}
        membership = self.membership
        redis_state = {"state": membership.state, "url": redact(self.config.redis_url or ""),
                       "error": membership.error}
        try:
            nodes = await membership.nodes()
        except (RedisError, OSError) as exc:
            redis_state = {**redis_state, "state": "down", "error": str(exc) or type(exc).__name__}
            nodes = [{**me, "incarnation": membership.incarnation}]
        return {"node": self.name, "incarnation": membership.incarnation, "redis": redis_state,
                "nodes": nodes, "conflicts": []}
