"""The application: ``make_app`` wires config, backend, hub and handlers; ``Server`` runs it."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import weakref
from typing import Any

import tornado.http1connection
import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web

from vmws.auth import TokenVerifier
from vmws.backend import Backend
from vmws.cluster.node import Cluster
from vmws.cluster.web import ClusterHandler, adapt_routes
from vmws.config import Config
from vmws.handlers import ConsoleSocket, MonitorSocket
from vmws.hub import Hub
from vmws.logs import log_request
from vmws.rest import HealthHandler, TicketHandler, VMListHandler
from vmws.tickets import Authenticator
from vmws.web import ui_routes

__all__ = ["make_app", "Server", "make_verifier", "DeadlineHTTPServer"]

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


def make_app(config: Config, hub: Hub, auth: Authenticator, cluster: Cluster | None = None) -> tornado.web.Application:
    cluster = cluster or Cluster(config, hub.backend)
    deps: dict[str, Any] = {"hub": hub, "auth": auth, "config": config}
    routes: list[Any] = [
        (rf"/ws/vms/{_NAME}/console", ConsoleSocket, deps),
        (rf"/ws/vms/{_NAME}", MonitorSocket, deps),
        (r"/api/vms", VMListHandler, deps),
        (r"/api/tickets", TicketHandler, deps),
        (r"/api/cluster", ClusterHandler, {**deps, "cluster": cluster}),
        (r"/healthz", HealthHandler),
        *ui_routes(),
    ]
    return tornado.web.Application(
        adapt_routes(routes, cluster),
        log_function=log_request,
        compress_response=True,  # the web UI's bundle: ~183 KB gzipped instead of ~630 KB
        websocket_max_message_size=config.max_message_bytes,
    )


class DeadlineHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with a deadline on every request's line and headers.

    Tornado gives each request one deadline for its line and headers, counted from when
    it starts waiting for them, so a trickle of header lines cannot extend it (Slowloris).
    The first request of a connection gets ``header_timeout``; on a kept-alive connection
    the wait for the next request (idle time and headers together) gets ``idle_timeout``.
    """

    def configure_deadlines(self, header_timeout: float, idle_timeout: float) -> None:
        def params(wait: float) -> tornado.http1connection.HTTP1ConnectionParameters:
            chosen = copy.copy(self.conn_params)
            chosen.header_timeout = wait
            chosen.body_timeout = header_timeout  # a request body gets no longer than its headers
            return chosen

        self._idle_params = params(idle_timeout)
        self.conn_params = params(header_timeout)
        self._served: weakref.WeakSet[object] = weakref.WeakSet()

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        if server_conn in self._served and isinstance(request_conn, tornado.http1connection.HTTP1Connection):
            request_conn.params = self._idle_params  # a kept-alive connection's next request
        else:
            self._served.add(server_conn)
        return super().start_request(server_conn, request_conn)


class Server:
    """One running gateway: backend started, hub started, HTTP server listening."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.cluster = Cluster(config, backend)
        self.auth = self.cluster.authenticator(make_verifier(config))
        self.hub = Hub(self.cluster.hub_backend(), config, now=time.time)
        self.cluster.attach(self.hub)
        self.app = make_app(config, self.hub, self.auth, self.cluster)
        self._http: tornado.httpserver.HTTPServer | None = None
        self.port = config.port

    async def start(self) -> None:
        await self.backend.start()
        await self.hub.start()
        self._http = DeadlineHTTPServer(self.app, xheaders=False)
        self._http.configure_deadlines(self.config.header_timeout, self.config.idle_timeout)
        # A deep accept queue: at the default 128, clients connecting in bursts overflowed
        # it (2,579 listen overflows in a load test), each costing a 1–3 s SYN retry.
        sockets = tornado.netutil.bind_sockets(self.config.port, self.config.host, backlog=1024)
        self.port = sockets[0].getsockname()[1]
        await self.cluster.start(self.port)  # registered in the cluster before accepting
        self._http.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop accepting, close every client with 1001, release the backend."""
        if self._http:
            self._http.stop()
        await self.hub.close()
        # Let the close frames reach the clients before the sockets go.
        await asyncio.sleep(0.1)
        if self._http:
            await asyncio.wait_for(self._http.close_all_connections(), timeout=5)
        await self.backend.close()
        await self.cluster.stop()
