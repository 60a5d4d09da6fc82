"""The application: ``make_app`` wires config, backend, hub and handlers; ``Server`` runs it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from vmws.auth import TokenVerifier
from vmws.backend import Backend
from vmws.client_address import TrustedProxies
from vmws.cluster.node import Cluster
from vmws.cluster.web import ClusterHandler, ReadyHandler, adapt_routes
from vmws.codes import CloseCode
from vmws.config import Config
from vmws.fleet import Fleet
from vmws.fleet_socket import FleetSocket
from vmws.handlers import ConsoleSocket, MonitorSocket
from vmws.history import HistoryLimits, MetricsHistory
from vmws.http_server import DeadlineHTTPServer
from vmws.hub import Hub
from vmws.logs import log_request
from vmws.operations_api import AuditHandler, MetricsHandler, OpenMetricsHandler, RevocationHandler
from vmws.rest import ConsoleCastHandler, HealthHandler, MetricsHistoryHandler, TicketHandler, VMListHandler
from vmws.screen.handler import ScreenSocket
from vmws.tickets import Authenticator
from vmws.web import ui_routes

__all__ = ["make_app", "make_fleet", "Server", "make_verifier", "DeadlineHTTPServer"]

log = logging.getLogger("vmws")

# A VM name is one URL path segment (percent-decoded by Tornado).
_NAME = r"([^/]+)"


def _read(path: str | None, what: str) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None


def make_verifier(config: Config) -> TokenVerifier:
    return TokenVerifier(
        secret=config.jwt_secret,
        algorithm=config.jwt_algorithm,
        public_key=_read(config.jwt_public_key, "public key file"),
        jwks=_read(config.jwt_jwks, "JWKS file"),
        audience=config.jwt_audience,
        issuer=config.jwt_issuer,
    )


def make_fleet(config: Config, hub: Hub) -> Fleet:
    """The fleet view and its history, fed by the hub's samples of watched VMs."""
    history = MetricsHistory(HistoryLimits.for_interval(min(config.metrics_interval, config.fleet_interval)))
    fleet = Fleet(hub.backend, history, config.fleet_interval, hub.now, hub.is_watched)
    hub.sample_listeners.append(fleet.record)
    return fleet


def make_app(
    config: Config,
    hub: Hub,
    auth: Authenticator,
    cluster: Cluster | None = None,
    fleet: Fleet | None = None,
) -> tornado.web.Application:
    cluster = cluster or Cluster(config, hub.backend)
    fleet = fleet or make_fleet(config, hub)
    deps: dict[str, Any] = {"hub": hub, "auth": auth, "config": config}
    routes: list[Any] = [
        (r"/ws/fleet", FleetSocket, {**deps, "fleet": fleet}),
        (rf"/ws/vms/{_NAME}/console", ConsoleSocket, deps),
        (rf"/ws/vms/{_NAME}/screen", ScreenSocket, deps),
        (rf"/ws/vms/{_NAME}", MonitorSocket, deps),
        (r"/api/vms", VMListHandler, deps),
        (rf"/api/vms/{_NAME}/console\.cast", ConsoleCastHandler, deps),
        (rf"/api/vms/{_NAME}/metrics", MetricsHistoryHandler, {**deps, "history": fleet.history}),
        (r"/api/tickets", TicketHandler, deps),
        (r"/api/cluster", ClusterHandler, {**deps, "cluster": cluster}),
        (r"/api/audit", AuditHandler, deps),
        (r"/api/revocations", RevocationHandler, deps),
        (r"/metrics", MetricsHandler, deps),
        (r"/healthz", HealthHandler),
        (r"/readyz", ReadyHandler, {"cluster": cluster}),
        *ui_routes(),
    ]
    return tornado.web.Application(
        adapt_routes(routes, cluster),
        log_function=log_request,
        compress_response=True,  # the web UI's bundle: ~183 KB gzipped instead of ~630 KB
        websocket_max_message_size=config.max_message_bytes,
    )


class Server:
    """One running gateway: backend started, hub started, HTTP server listening."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.cluster = Cluster(config, backend)
        self.auth = self.cluster.authenticator(make_verifier(config))
        self.hub = Hub(self.cluster.hub_backend(), config, now=time.time)
        self.cluster.attach(self.hub)
        self.hub.oversight.audit.node = config.node_name or ""
        self.fleet = make_fleet(config, self.hub)
        self.cluster.attach_fleet(self.fleet)
        self.app = make_app(config, self.hub, self.auth, self.cluster, self.fleet)
        self._http: tornado.httpserver.HTTPServer | None = None
        self._metrics_http: tornado.httpserver.HTTPServer | None = None
        self.port = config.port
        self.metrics_port: int | None = None
        self._revocation_sync: Any = None
        self._shared_audit: Any = None
        self._console_seats: Any = None

    async def start(self) -> None:
        await self.backend.start()
        await self.hub.start()
        await self.fleet.start()
        self._http = DeadlineHTTPServer(self.app, xheaders=False)
        self._http.configure_deadlines(self.config.header_timeout, self.config.idle_timeout)
        self._http.trust_proxies(TrustedProxies(self.config.trusted_proxies))
        # A deep accept queue: at the default 128, clients connecting in bursts overflowed
        # it (2,579 listen overflows in a load test), each costing a 1–3 s SYN retry.
        sockets = tornado.netutil.bind_sockets(self.config.port, self.config.host, backlog=1024)
        self.port = sockets[0].getsockname()[1]
        await self.cluster.start(self.port)  # registered in the cluster before accepting
        await self._share_revocations()
        await self._share_audit()
        await self._share_console_seats()
        self.hub.oversight.audit.node = self.cluster.name or f"{self.config.host}:{self.port}"
        self._http.add_sockets(sockets)
        if self.config.metrics_listen:
            self._start_metrics_listener()

    async def _share_revocations(self) -> None:
        """In a cluster, revocations go through Redis to every node (docs/operations.md)."""
        if self.cluster.redis is None:
            return
        from vmws.cluster.revocations import RevocationSync

        membership = self.cluster.membership
        self._revocation_sync = RevocationSync(
            self.cluster.redis,
            self.auth.revocations,
            membership.incarnation if membership else self.cluster.name,
            on_remote=lambda entry, by: self.hub.oversight.revoked(entry, by, None),
        )
        self.auth.revocations.share = self._revocation_sync.share
        await self._revocation_sync.start()

    async def _share_audit(self) -> None:
        """In a cluster, every node's audit events go to one Redis stream (docs/operations.md)."""
        if self.cluster.redis is None:
            return
        from vmws.cluster.audit import SharedAudit

        self._shared_audit = SharedAudit(self.cluster.redis, self.config.audit_ring_size)
        self.hub.oversight.audit.on_record = self._shared_audit.add
        self.hub.oversight.shared_audit = self._shared_audit
        await self._shared_audit.start()

    async def _share_console_seats(self) -> None:
        """In a cluster, console viewer caps count every node's viewers (docs/cluster.md)."""
        if self.cluster.redis is None:
            return
        from vmws.cluster.viewer_caps import ConsoleSeats

        self._console_seats = ConsoleSeats(self.cluster.redis)
        self.hub.console_seats = self._console_seats
        await self._console_seats.start()

    def _start_metrics_listener(self) -> None:
        """``GET /metrics`` without a token, on its own address (``--metrics-listen``)."""
        host, port = self.config.metrics_address()
        app = tornado.web.Application([(r"/metrics", OpenMetricsHandler, {"hub": self.hub})], log_function=log_request)
        self._metrics_http = DeadlineHTTPServer(app, xheaders=False)
        self._metrics_http.configure_deadlines(self.config.header_timeout, self.config.idle_timeout)
        sockets = tornado.netutil.bind_sockets(port, host)
        self.metrics_port = sockets[0].getsockname()[1]
        self._metrics_http.add_sockets(sockets)

    async def drain(self) -> None:
        """SIGTERM: ``/readyz`` turns 503 and, ``--drain-delay`` later (the balancer has
        seen it), this node's libvirt VMs are handed to other nodes in a cluster, before
        ``stop`` closes the sockets (docs/cluster.md)."""
        self.cluster.draining = True
        if self.config.drain_delay > 0:
            await asyncio.sleep(self.config.drain_delay)
        await self.cluster.drain()

    async def stop(self) -> None:
        """Stop accepting, close every client with 1001 (1012 from a draining cluster
        node: another node serves them), release the backend."""
        if self._http:
            self._http.stop()
        await self.fleet.close()
        if self._metrics_http:
            self._metrics_http.stop()
        if self.cluster.draining and not self.cluster.embedded:
            await self.hub.close("node draining: reconnect", CloseCode.SERVICE_RESTART)
        else:
            await self.hub.close()
        # Let the close frames reach the clients before the sockets go.
        await asyncio.sleep(0.1)
        if self._http:
            await asyncio.wait_for(self._http.close_all_connections(), timeout=5)
        await self.backend.close()
        if self._revocation_sync is not None:
            await self._revocation_sync.stop()
        if self._shared_audit is not None:
            await self._shared_audit.stop()
        if self._console_seats is not None:
            await self._console_seats.stop()
        await self.cluster.stop()
        self.hub.oversight.close()
