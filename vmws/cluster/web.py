"""The cluster's HTTP side: ``GET /api/cluster``, ``GET /readyz``, and the routes that
answer differently on a cluster node (tickets issued into Redis, every node's VMs, a
VM's metrics history from its owner). Tickets are redeemed in Redis by the node's
``ClusterAuthenticator``, whichever route presents them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import tornado.web
import tornado.websocket

from vmws.auth import Permission
from vmws.cluster.history import ClusterMetricsHistoryHandler
from vmws.cluster.listing import cluster_vms
from vmws.cluster.node import Cluster
from vmws.config import Config
from vmws.errors import AuthError, VMWSError
from vmws.http_request import bearer_token, credential, log_exception_redacted
from vmws.hub import Hub
from vmws.rest import MetricsHistoryHandler, TicketHandler, VMListHandler, http_status
from vmws.tickets import TICKET_PREFIX, Authenticator, RedisTicketStore, ticket_life

__all__ = ["ClusterHandler", "ReadyHandler", "adapt_routes"]


def _json_error(handler: tornado.web.RequestHandler, status: int, exc: VMWSError) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    if status == 401:
        handler.set_header("WWW-Authenticate", 'Bearer realm="vmws"')
    handler.finish(orjson.dumps({"error": {"code": exc.code, "message": exc.message}}))


class ClusterHandler(tornado.web.RequestHandler):
    """``GET /api/cluster`` (needs ``read``): this node, every live node, Redis's state."""

    def initialize(self, auth: Authenticator, cluster: Cluster, **_: Any) -> None:
        self.auth = auth
        self.cluster = cluster

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    async def get(self) -> None:
        try:
            (await self.auth.authenticate(credential(self.request))).require(Permission.READ)
        except VMWSError as exc:  # 401/403, 400 for an undecodable query, 503 without Redis
            _json_error(self, http_status(exc), exc)
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(await self.cluster.snapshot()))


class ReadyHandler(tornado.web.RequestHandler):
    """``GET /readyz``: 200 while the node takes new clients, 503 once SIGTERM arrived
    (a balancer's health check sends new clients elsewhere while it drains)."""

    def initialize(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        if self.cluster.draining:
            self.set_status(503)
            self.finish(b'{"status":"draining"}')
        else:
            self.finish(b'{"status":"ready"}')


class _ClusterTicketHandler(TicketHandler):
    """``POST /api/tickets`` with the ticket stored in Redis (for any node to redeem);
    refused as on one node, and 503 while Redis cannot be reached."""

    async def post(self) -> None:  # type: ignore[override]  # the store is asynchronous
        store = getattr(self.auth, "cluster_tickets", None)
        assert isinstance(store, RedisTicketStore)
        try:
            token = bearer_token(self.request)
            if token is None or token.startswith(TICKET_PREFIX):
                raise AuthError("POST /api/tickets needs a token in an Authorization: Bearer header")
            principal = self.auth.verify_token(token)
            ticket = await store.issue(principal)
        except AuthError as exc:
            self._refuse(exc)
            return
        self.hub.oversight.ticket_issued(principal, self.request.remote_ip)
        self.set_status(201)
        expires_in = max(0.0, ticket_life(store.ttl, principal, time.time()))
        self.write(orjson.dumps({"ticket": ticket, "expiresIn": round(expires_in, 3)}))


class _ClusterVMListHandler(VMListHandler):
    """``GET /api/vms`` on a cluster node: every VM of the cluster, each with its ``node``."""

    def initialize(self, hub: Hub, auth: Authenticator, config: Config, cluster: Cluster | None = None) -> None:
        super().initialize(hub, auth, config)
        assert cluster is not None
        self.cluster = cluster

    async def get(self) -> None:
        try:
            principal = await self.auth.authenticate(credential(self.request))
            principal.require(Permission.READ)
            local = await self.cluster.backend.list()
        except VMWSError as exc:
            self._refuse(exc)
            return
        listing = await cluster_vms(self.cluster.redis, self.cluster.name, local)
        self.write(orjson.dumps({"vms": [vm for vm in listing if principal.may_reach(vm["name"])]}))


def adapt_routes(routes: list[Any], cluster: Cluster) -> list[Any]:
    """The routes as they work on this node: unchanged when it is alone."""
    if cluster.embedded:
        return routes
    adapted: list[Any] = []
    for route in routes:
        if isinstance(route, tuple) and len(route) == 3 and isinstance(route[2], dict) and "auth" in route[2]:
            pattern, cls, deps = route
            if cls is TicketHandler:
                cls = _ClusterTicketHandler
            elif cls is VMListHandler:
                cls, deps = _ClusterVMListHandler, {**deps, "cluster": cluster}
            elif cls is MetricsHistoryHandler:
                cls, deps = ClusterMetricsHistoryHandler, {**deps, "cluster": cluster}
            route = (pattern, cls, deps)
        adapted.append(route)
    return adapted
