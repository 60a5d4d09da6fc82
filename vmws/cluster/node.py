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

from vmws import protocol
from vmws.auth import TokenVerifier
from vmws.backend import Backend
from vmws.cluster import wire
from vmws.cluster.backend import ClusterBackend, live_incarnation, parse_record
from vmws.cluster.candidates import Candidates
from vmws.cluster.fleet_services import FleetServices
from vmws.cluster.leases import LEASE_TTL, RELEASED_CHANNEL, Leases
from vmws.cluster.membership import NODE_TTL, REFRESH_INTERVAL, Membership, node_key
from vmws.cluster.owned import OwnedBackend
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
        self.name = config.node_name or ""
        self.redis: Any = connect_redis(config.redis_url) if config.redis_url else None
        # A libvirt node in a cluster owns only the VMs whose lease it holds (leases.py);
        # alone, it owns every VM it reaches (as a simulator shard owns its VMs).
        self.owned: OwnedBackend | None = None
        if self.redis is not None and config.backend == "libvirt":
            self.owned = OwnedBackend(backend, self.redis)
            backend = self.owned
        self.backend = backend
        self.leases: Leases | None = None
        self.candidates: Candidates | None = None
        self.draining = False  # SIGTERM arrived: /readyz answers 503
        self._dead_since: dict[str, float] = {}  # followed VMs whose owner is gone, since
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
            self.relayed.on_console_lost = self._console_lost

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
            if self.owned is not None:
                await self._start_leases()
            if self._fleet is not None and self.relayed is not None:
                self.fleet_services = FleetServices(self, self._hub, self._fleet)
                await self.fleet_services.start()
            self._relay_task = asyncio.create_task(self._relaying(), name="relay-refresh")

    async def _start_leases(self) -> None:
        """Take the leases of the VMs nobody owns, before the node accepts connections."""
        assert self.owned is not None and self.membership is not None and self.relay is not None
        owned = self.owned
        self.candidates = Candidates(self.redis, self.name)
        await self._register_candidate()
        self.leases = Leases(self.redis, self.membership.incarnation, self._reachable, self._gained, self._released)
        leases = self.leases
        owned.holds = leases.holds
        owned.on_continue = lambda vm, epoch: self.owner.continues(vm, epoch) if self.owner else None
        await self.relay.listen(RELEASED_CHANNEL, lambda _header, _data: leases.nudge())
        await leases.start()

    async def _register_candidate(self) -> None:
        """Say which hosts' VMs this node reaches; learn the names found on two hosts."""
        if self.owned is None or self.candidates is None:
            return
        names = await self.owned.reachable()
        vm_hosts = {vm: host for vm in names if (host := self.owned.host_of(vm))}
        before = set(self.candidates.conflicts)
        try:
            await self.candidates.register(vm_hosts)
        except Exception as exc:  # Redis down: the leases say so; retried next refresh
            log.debug("candidate registration skipped: %s", exc)
            return
        for vm in sorted(set(self.candidates.conflicts) - before):
            log.warning(
                "VM name %r is on several hypervisor hosts (%s here, %s): served from none until it is unique",
                vm,
                vm_hosts[vm],
                ", ".join(self.candidates.conflicts[vm]),
            )
        for vm in sorted(before - set(self.candidates.conflicts)):
            log.info("VM name %r is unique again across the cluster: served", vm)

    async def _reachable(self) -> set[str]:
        """The VMs this node may own: those it reaches, less names on two hosts."""
        assert self.owned is not None
        names = await self.owned.reachable()
        return names - set(self.candidates.conflicts) if self.candidates is not None else names

    async def _gained(self, vm: str, fence: int) -> None:
        """This node now owns ``vm``: serve it here, and continue its console at once if
        it had one (viewers on every node go on with the same epoch and offsets)."""
        assert self.owned is not None and self.owner is not None
        self.owned.owned.add(vm)
        self._dead_since.pop(vm, None)
        if self.relayed is not None:
            # It was followed from its previous owner: its relayed console (read from
            # our own publications from now on) ends; its viewers resume with ?since=.
            self._close_viewers(vm, f"VM {vm!r} changed owner node: resume the console")
            self.relayed.lose(vm)
            await self.relayed.unfollow(vm)
        try:
            await self.owner.take(vm)
        except Exception as exc:
            log.warning("VM %s not taken up: %s", vm, exc)
            return
        if self._hub is not None and await self._had_console(vm):
            self._hub.spawn(self._reopen_console(vm))

    async def _had_console(self, vm: str) -> bool:
        try:
            return bool(await self.redis.exists(wire.console_key(vm)))
        except Exception:
            return False

    async def _reopen_console(self, vm: str) -> None:
        assert self._hub is not None
        for _ in range(100):  # the relayed channel ends on its own read loop
            if self._hub.open_console_channel(vm) is None:
                break
            await asyncio.sleep(0.02)
        try:
            await self._hub.console(vm)
        except Exception as exc:  # stopped meanwhile, libvirt away: a viewer opens it later
            log.info("console of %s not re-opened after the takeover: %s", vm, exc)

    def _close_viewers(self, vm: str, message: str) -> None:
        if self._hub is None:
            return
        channel = self._hub.open_console_channel(vm)
        if channel is None:
            return
        error = protocol.error_message(ErrorCode.UNKNOWN_ERROR, message, time.time())
        for peer in list(channel.viewers):
            peer.send(error)
            peer.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    async def _released(self, vm: str) -> None:
        """This node no longer owns ``vm`` (released, lease lost): stop acting on it."""
        assert self.owned is not None and self.owner is not None
        self.owned.owned.discard(vm)
        await self.owner.drop(vm, forget=self.candidates is not None and vm in self.candidates.conflicts)
        if self._hub is None:
            return
        channel = self._hub.open_console_channel(vm)
        if not self.draining:
            # Its sockets here reconnect and are relayed to the new owner (a draining
            # node closes every socket with 1012 right after).
            self._hub.lost(
                vm, ErrorCode.UNKNOWN_ERROR, f"VM {vm!r} changed owner node: reconnect", CloseCode.TRY_AGAIN_LATER
            )
        if channel is not None:
            await channel.close()

    async def drain(self, wait: float = 5.0) -> list[str]:
        """SIGTERM: stop taking leases, hand every VM to another candidate and wait (up to
        ``wait`` seconds) until one has taken each; the VMs handed over."""
        self.draining = True
        if self.leases is None:
            return []
        released = await self.leases.release_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        waiting = set(released)
        while waiting and loop.time() < deadline:
            await asyncio.sleep(0.1)
            for vm in list(waiting):
                try:
                    owner = await self.redis.hget(wire.vm_key(vm), "owner")
                except Exception:
                    return released  # Redis away: the candidates take them when it is back
                if owner is not None and owner.decode("utf-8", "replace") != self.name:
                    waiting.discard(vm)
        if waiting:
            log.info("drained; no other node took %s yet", ", ".join(sorted(waiting)))
        else:
            log.info("drained: %d VMs handed over to other nodes", len(released))
        return released

    async def _relaying(self) -> None:
        """Every refresh: rewrite this node's VM records; stop following VMs nobody here
        uses; drop VMs whose owner is gone."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                assert self.owner is not None and self.relayed is not None
                await self._register_candidate()
                await self.owner.refresh()
                if self.relay is None or self.relay.up_for() < NODE_TTL:
                    # Redis just came back (maybe empty): live owners re-register within a
                    # refresh; a missing liveness key means a dead owner only after a TTL.
                    continue
                if self._hub is not None:
                    for vm in self.relayed.idle(self._hub.has_sockets):
                        await self.relayed.unfollow(vm)
                for vm, (node, incarnation) in self.relayed.followed().items():
                    if not live_incarnation(await self.redis.get(node_key(node)), incarnation):
                        await self._owner_gone(vm, node)
            except Exception as exc:  # Redis down: the relay and membership say so
                log.debug("relay refresh skipped: %s", exc)

    async def _owner_gone(self, vm: str, node: str) -> None:
        """The node that owned followed ``vm`` is gone. A libvirt VM has other candidates:
        follow its new owner once one has taken it (its sockets here stay open), and give
        them a lease TTL and a round to do so; any other VM is lost with its node."""
        raw = await self.redis.hgetall(wire.vm_key(vm))
        try:
            _, owner = parse_record(vm, raw)
        except (ValueError, TypeError):
            owner = None
        if owner is not None and owner[0] != node and self.relayed is not None:
            if live_incarnation(await self.redis.get(node_key(owner[0])), owner[1]):
                log.info("VM %s moved from node %s to node %s", vm, node, owner[0])
                self._dead_since.pop(vm, None)
                self.relayed.refollow(vm, owner)
                return
        now = time.monotonic()
        since = self._dead_since.setdefault(vm, now)
        host = raw.get(b"host")
        if isinstance(host, bytes) and now - since < LEASE_TTL + 2 * REFRESH_INTERVAL:
            candidates = Candidates(self.redis, self.name)
            if await candidates.live(host.decode("utf-8", "replace"), besides=node):
                return  # a live candidate takes its lease within the TTL
        self._dead_since.pop(vm, None)
        self._lost(vm, f"VM {vm!r} is unavailable: its node {node!r} is gone")

    def _lost(self, vm: str, message: str) -> None:
        """``vm``'s owner is gone: its sockets here get ``message`` and 1013."""
        log.warning("%s: closing its sockets on this node with 1013", message)
        if self._hub is not None:
            self._hub.lost(vm, ErrorCode.UNKNOWN_ERROR, message, CloseCode.TRY_AGAIN_LATER)
        if self.relayed is not None:
            self.relayed.lose(vm)
            self._hub_spawn(self.relayed.unfollow(vm))

    def _console_lost(self, vm: str, message: str) -> None:
        """This node's copy of another node's console ended: its viewers here get
        ``message`` and 1013 and resume with ``?since=``; the VM's watchers stay."""
        log.info("%s: closing its console viewers on this node with 1013", message)
        if self._hub is not None:
            self._hub.lost(vm, ErrorCode.UNKNOWN_ERROR, message, CloseCode.TRY_AGAIN_LATER, console_only=True)

    def _hub_spawn(self, coro: Any) -> None:
        if self._hub is not None:
            self._hub.spawn(coro)

    async def stop(self) -> None:
        if self.leases is not None:
            await self.leases.release_all()  # candidates take them at once
            await self.leases.stop()
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

    def conflicts(self) -> list[dict[str, Any]]:
        """VM names found on two hypervisor hosts, each with its hosts (served from none):
        on this node's own hosts, and (in a cluster) on a host another node reaches."""
        conflicts = getattr(self.backend, "conflicts", None)
        found = {c["name"]: c for c in (conflicts() if callable(conflicts) else [])}
        if self.candidates is not None and self.owned is not None:
            for vm, others in self.candidates.conflicts.items():
                mine = self.owned.host_of(vm)
                hosts = [{"id": mine, "uri": None}] if mine else []
                found.setdefault(vm, {"name": vm, "hosts": hosts + [{"id": h, "uri": None} for h in others]})
        return [found[name] for name in sorted(found)]

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
                "conflicts": self.conflicts(),
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
            "conflicts": self.conflicts(),
        }
