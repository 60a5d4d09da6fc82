"""The cluster's HTTP side: ``GET /api/cluster``, and routes whose tickets come from Redis.

Handlers authenticate synchronously (``Authenticator.authenticate``); a ticket in Redis
needs a round trip, so in a cluster every route that authenticates first awaits
``Authenticator.prepare`` in Tornado's ``prepare`` step (before the upgrade of a
WebSocket), which redeems the ticket cluster-wide and holds the outcome for it.
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
from vmws.codes import CloseCode
from vmws.config import Config
from vmws.errors import AuthError, VMWSError
from vmws.http_request import UndecodableQuery, bearer_token, log_exception_redacted, query_argument
from vmws.hub import Hub
from vmws.rest import MetricsHistoryHandler, TicketHandler, VMListHandler
from vmws.tickets import TICKET_PREFIX, Authenticator, ClusterUnavailable, RedisTicketStore, ticket_life

__all__ = ["ClusterHandler", "ReadyHandler", "adapt_routes"]


def _json_error(handler: tornado.web.RequestHandler, status: int, exc: VMWSError) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    if status == 401:
        handler.set_header("WWW-Authenticate", 'Bearer realm="vmws"')
    handler.finish(orjson.dumps({"error": {"code": exc.code, "message": exc.message}}))


def _credential(handler: tornado.web.RequestHandler) -> str | None:
    return query_argument(handler.request, "token") or bearer_token(handler.request)


class ClusterHandler(tornado.web.RequestHandler):
    """``GET /api/cluster`` (needs ``read``): this node, every live node, Redis's state."""

    def initialize(self, auth: Authenticator, cluster: Cluster, **_: Any) -> None:
        self.auth = auth
        self.cluster = cluster

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    async def get(self) -> None:
        credential = _credential(self)
        try:
            unavailable = await self.auth.prepare(credential)
            if unavailable is not None:
                raise unavailable
            self.auth.authenticate(credential).require(Permission.READ)
        except ClusterUnavailable as exc:
            _json_error(self, 503, exc)
            return
        except AuthError as exc:
            _json_error(self, 401 if exc.close_code == CloseCode.UNAUTHENTICATED else 403, exc)
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
    """``POST /api/tickets`` with the ticket stored in Redis; answered from ``prepare``
    (the store is asynchronous), so ``post`` never runs."""

    async def prepare(self) -> None:
        if self.request.method != "POST":
            return
        store = getattr(self.auth, "cluster_tickets", None)
        assert isinstance(store, RedisTicketStore)
        try:
            token = bearer_token(self.request)
            if token is None or token.startswith(TICKET_PREFIX):
                raise AuthError("POST /api/tickets needs a token in an Authorization: Bearer header")
            principal = self.auth.verify_token(token)
            ticket = await store.issue(principal)
        except ClusterUnavailable as exc:
            _json_error(self, 503, exc)
            return
        except AuthError as exc:
            self.hub.oversight.refused(exc, self.request.remote_ip, sub=None, where=self.request.path)
            _json_error(self, 429 if exc.close_code == CloseCode.TOO_MANY else 401, exc)
            return
        self.hub.oversight.ticket_issued(principal, self.request.remote_ip)
        self.set_status(201)
        expires_in = max(0.0, ticket_life(store.ttl, principal, time.time()))
        self.finish(orjson.dumps({"ticket": ticket, "expiresIn": round(expires_in, 3)}))


async def _prepare_credential(self: Any) -> None:
    try:
        credential = _credential(self)
    except UndecodableQuery:
        return  # the handler refuses it as on one node (HTTP 400, close 4001)
    unavailable = await self.auth.prepare(credential)
    if unavailable is not None and not isinstance(self, tornado.websocket.WebSocketHandler):
        _json_error(self, 503, unavailable)
    # a WebSocket is upgraded first and refused after (close 1013), like every refusal


class _ClusterVMListHandler(VMListHandler):
    """``GET /api/vms`` on a cluster node: every VM of the cluster, each with its ``node``."""

    def initialize(self, hub: Hub, auth: Authenticator, config: Config, cluster: Cluster | None = None) -> None:
        super().initialize(hub, auth, config)
        assert cluster is not None
        self.cluster = cluster

    async def get(self) -> None:
        try:
            principal = self.auth.authenticate(_credential(self))
            principal.require(Permission.READ)
            local = await self.cluster.backend.list()
        except VMWSError as exc:
            self._refuse(exc)
            return
        listing = await cluster_vms(self.cluster.redis, self.cluster.name, local)
        self.write(orjson.dumps({"vms": [vm for vm in listing if principal.may_reach(vm["name"])]}))


_adapted: dict[type[Any], type[Any]] = {}


def _with_prepared_credential(cls: type[Any]) -> type[Any]:
    if cls not in _adapted:
        _adapted[cls] = type(cls.__name__, (cls,), {"prepare": _prepare_credential, "__doc__": cls.__doc__})
    return _adapted[cls]


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
                cls, deps = _with_prepared_credential(_ClusterVMListHandler), {**deps, "cluster": cluster}
            elif cls is MetricsHistoryHandler:
                cls, deps = _with_prepared_credential(ClusterMetricsHistoryHandler), {**deps, "cluster": cluster}
            elif cls is not ClusterHandler:
                cls = _with_prepared_credential(cls)
            route = (pattern, cls, deps)
        adapted.append(route)
    return adapted
