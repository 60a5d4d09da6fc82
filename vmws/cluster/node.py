"""This node's place in the cluster: its name, its Redis, its membership, its tickets.

Without ``--redis-url`` the node is alone (the embedded default): tickets in memory,
``/api/cluster`` lists this node only. See ``docs/cluster.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from vmws.auth import TokenVerifier
from vmws.backend import Backend
from vmws.cluster.backend import ClusterBackend, live_incarnation
from vmws.cluster.fleet_services import FleetServices
from vmws.cluster.membership import NODE_TTL, REFRESH_INTERVAL, Membership, node_key
from vmws.cluster.owner import Owner
from vmws.cluster.redis_url import redact
from vmws.cluster.relay import Relay
from vmws.cluster.screen_forward import default_node_url
from vmws.codes import CloseCode, ErrorCode
from vmws.config import Config
from vmws.tickets import Authenticator, ClusterAuthenticator, RedisTicketStore, TicketStore

if TYPE_CHECKING:
    from vmws.fleet import Fleet
    from vmws.hub import Hub

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
        url,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


class Cluster:
    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.name = config.node_name or ""
        self.redis: Any = connect_redis(config.redis_url) if config.redis_url else None
        self.membership: Membership | None = None
        self.started = time.time()
        self.relay: Relay | None = Relay(self.redis, "") if self.redis is not None else None
        self.relayed: ClusterBackend | None = None
        self.owner: Owner | None = None
        self._hub: Hub | None = None
        self._fleet: Fleet | None = None
        self.fleet_services: FleetServices | None = None
        self._relay_task: asyncio.Task[None] | None = None

    def hub_backend(self) -> Backend:
        """What the hub talks to: the local backend alone, or with the relay."""
        if self.relay is None:
            return self.backend
        self.relayed = ClusterBackend(
            self.backend, self.relay, now=time.time, command_timeout=self.config.command_timeout
        )
        return self.relayed

    def attach(self, hub: Hub) -> None:
        """The hub serves this node's sockets; with Redis it also serves other nodes'."""
        self._hub = hub
        if self.relay is not None:
            hub.oversight.telemetry.watch_cluster(
                self.relay.counts, lambda: len(self.owner.vms) if self.owner is not None else 0
            )
        if self.relayed is not None:
            hub.command_relay = self.relayed.relay_command
            self.relayed.on_lost = self._lost

    def attach_fleet(self, fleet: Fleet) -> None:
        """With Redis, the fleet shows every node's VMs, and metrics cross nodes once."""
        self._fleet = fleet

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
        self.url = self.config.advertise_url or default_node_url(self.config.host, port)
        self.membership = Membership(self.redis, self.name, self._vm_count, url=self.url)
        await self.membership.start()
        if self.relay is not None and self._hub is not None:
            self.relay.node = self.name
            await self.relay.start()
            self.owner = Owner(
                self.relay,
                self.backend,
                self._hub,
                self.name,
                self.membership.incarnation,
                self.config.scrollback_bytes,
            )
            if self.relayed is not None:
                self.relayed.local_names = self.owner.vms  # one set, kept by the owner side
            await self.owner.start()
            if self._fleet is not None and self.relayed is not None:
                self.fleet_services = FleetServices(self, self._hub, self._fleet)
                await self.fleet_services.start()
            self._relay_task = asyncio.create_task(self._relaying(), name="relay-refresh")

    async def _relaying(self) -> None:
        """Every refresh: rewrite this node's VM records; drop VMs whose owner is gone."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                assert self.owner is not None and self.relayed is not None
                await self.owner.refresh()
                if self.relay is None or self.relay.up_for() < NODE_TTL:
                    # Redis just came back (maybe empty): live owners re-register within a
                    # refresh; a missing liveness key means a dead owner only after a TTL.
                    continue
                for vm, (node, incarnation) in self.relayed.followed().items():
                    if not live_incarnation(await self.redis.get(node_key(node)), incarnation):
                        self._lost(vm, f"VM {vm!r} is unavailable: its node {node!r} is gone")
            except Exception as exc:  # Redis down: the relay and membership say so
                log.debug("relay refresh skipped: %s", exc)

    def _lost(self, vm: str, message: str) -> None:
        """``vm``'s owner is gone: its sockets here get ``message`` and 1013."""
        log.warning("%s: closing its sockets on this node with 1013", message)
        if self._hub is not None:
            self._hub.lost(vm, ErrorCode.UNKNOWN_ERROR, message, CloseCode.TRY_AGAIN_LATER)
        if self.relayed is not None:
            self.relayed.lose(vm)
            self._hub_spawn(self.relayed.unfollow(vm))

    def _hub_spawn(self, coro: Any) -> None:
        if self._hub is not None:
            self._hub.spawn(coro)

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self.fleet_services is not None:
            await self.fleet_services.stop()
        if self.owner is not None:
            await self.owner.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.membership is not None:
            await self.membership.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def snapshot(self) -> dict[str, Any]:
        """What ``GET /api/cluster`` answers."""
        from redis.exceptions import RedisError

        me = {"name": self.name, "vms": await self._vm_count(), "lastSeen": time.time(), "self": True}
        if self.membership is None:
            return {
                "node": self.name,
                "incarnation": None,
                "redis": {"state": "none", "url": None, "error": None},
                "nodes": [{**me, "incarnation": None}],
                "conflicts": [],
            }
        membership = self.membership
        redis_state = {"state": membership.state, "url": redact(self.config.redis_url or ""), "error": membership.error}
        try:
            nodes = await membership.nodes()
        except (RedisError, OSError) as exc:
            redis_state = {**redis_state, "state": "down", "error": str(exc) or type(exc).__name__}
            nodes = [{**me, "incarnation": membership.incarnation}]
        return {
            "node": self.name,
            "incarnation": membership.incarnation,
            "redis": redis_state,
            "nodes": nodes,
            "conflicts": [],
        }
