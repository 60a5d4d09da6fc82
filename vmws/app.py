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
from vmws.config import Config
from vmws.handlers import ConsoleSocket, HealthHandler, MonitorSocket, VMListHandler
from vmws.hub import Hub
from vmws.logs import log_request
from vmws.web import ui_routes

__all__ = ["make_app", "Server", "make_verifier"]

log = logging.getLogger("vmws")

# A VM name is one URL path segment (percent-decoded by Tornado).
_NAME = r"([^/]+)"


def make_verifier(config: Config) -> TokenVerifier:
    public_key = None
    if config.jwt_public_key:
        with open(config.jwt_public_key, encoding="utf-8") as fh:
            public_key = fh.read()
    return TokenVerifier(
        secret=config.jwt_secret,
        algorithm=config.jwt_algorithm,
        public_key=public_key,
        audience=config.jwt_audience,
        issuer=config.jwt_issuer,
    )


def make_app(config: Config, hub: Hub, verifier: TokenVerifier) -> tornado.web.Application:
    deps: dict[str, Any] = {"hub": hub, "verifier": verifier, "config": config}
    routes: list[Any] = [
        (rf"/ws/vms/{_NAME}/console", ConsoleSocket, deps),
        (rf"/ws/vms/{_NAME}", MonitorSocket, deps),
        (r"/api/vms", VMListHandler, deps),
        (r"/healthz", HealthHandler),
        *ui_routes(),
    ]
    return tornado.web.Application(
        routes,
        log_function=log_request,
        websocket_max_message_size=config.max_message_bytes,
    )


class Server:
    """One running gateway: backend started, hub started, HTTP server listening."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.verifier = make_verifier(config)
        self.hub = Hub(backend, config, now=time.time)
        self.app = make_app(config, self.hub, self.verifier)
        self._http: tornado.httpserver.HTTPServer | None = None
        self.port = config.port

    async def start(self) -> None:
        await self.backend.start()
        await self.hub.start()
        self._http = tornado.httpserver.HTTPServer(self.app, xheaders=False)
        sockets = tornado.netutil.bind_sockets(self.config.port, self.config.host)
        self.port = sockets[0].getsockname()[1]
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
