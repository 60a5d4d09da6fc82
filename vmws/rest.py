"""REST handlers: ``GET /healthz``, ``GET /api/vms``, ``POST /api/tickets``,
``GET /api/vms/{name}/console.cast``, ``GET /api/vms/{name}/metrics``.

Each answers JSON, with errors as ``{"error": {"code", "message"}}`` and never a
traceback; 401 carries ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import orjson
import tornado.web

from vmws.auth import Permission
from vmws.codes import CloseCode, ErrorCode
from vmws.config import Config
from vmws.errors import AuthError, InvalidCommand, VMNotFound, VMWSError
from vmws.history import MetricsHistory, sample_object
from vmws.http_request import UndecodableQuery, bearer_token, credential, log_exception_redacted, query_argument
from vmws.hub import Hub
from vmws.recording import MEDIA_TYPE, scrollback_cast
from vmws.tickets import TICKET_PREFIX, Authenticator, ticket_life

__all__ = ["HealthHandler", "VMListHandler", "TicketHandler", "ConsoleCastHandler", "MetricsHistoryHandler"]

# No VM has a longer name; longer ones are not looked up (as on the WebSocket endpoints).
_MAX_NAME_BYTES = 255
# `?since=`: seconds back, a plain decimal number (no exponent, sign, inf or nan).
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(b'{"status":"ok"}')


def http_status(exc: VMWSError) -> int:
    """The HTTP status that refuses a request with ``exc``."""
    if isinstance(exc, UndecodableQuery | InvalidCommand):
        return 400
    if isinstance(exc, AuthError):
        by_close = {CloseCode.UNAUTHENTICATED: 401, CloseCode.TOO_MANY: 429, CloseCode.TRY_AGAIN_LATER: 503}
        return by_close.get(exc.close_code, 403)
    return 404 if isinstance(exc, VMNotFound) else 503


class _APIHandler(tornado.web.RequestHandler):
    def initialize(self, hub: Hub, auth: Authenticator, config: Config) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own errors (405, ...) as JSON like ours, without a traceback."""
        code = ErrorCode.INVALID_COMMAND if status_code < 500 else ErrorCode.UNKNOWN_ERROR
        self.finish(orjson.dumps({"error": {"code": code, "message": f"{status_code} {self._reason}"}}))

    def _refuse(self, exc: VMWSError) -> None:
        """Answer ``exc`` with its HTTP status: one table for every REST endpoint."""
        self._error(http_status(exc), exc)

    def _error(self, status: int, exc: VMWSError) -> None:
        self.hub.oversight.refused(exc, self.request.remote_ip, sub=None, where=self.request.path)
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="vmws"')
        self.write(orjson.dumps({"error": {"code": exc.code, "message": exc.message}}))


class TicketHandler(_APIHandler):
    """``POST /api/tickets``: trade a Bearer token for a short-lived single-use ticket."""

    def post(self) -> None:
        try:
            token = bearer_token(self.request)
            if token is None or token.startswith(TICKET_PREFIX):
                raise AuthError("POST /api/tickets needs a token in an Authorization: Bearer header")
            principal = self.auth.verify_token(token)
            ticket = self.auth.tickets.issue(principal)
        except AuthError as exc:
            self._refuse(exc)
            return
        self.hub.oversight.ticket_issued(principal, self.request.remote_ip)
        expires_in = max(0.0, ticket_life(self.auth.tickets.ttl, principal, time.time()))
        self.set_status(201)
        self.write(orjson.dumps({"ticket": ticket, "expiresIn": round(expires_in, 3)}))


class VMListHandler(_APIHandler):
    """``GET /api/vms``: name and status of every VM the token may reach (needs ``read``)."""

    async def get(self) -> None:
        try:
            principal = await self.auth.authenticate(credential(self.request))
            principal.require(Permission.READ)
            vms = await self.hub.backend.list()
        except VMWSError as exc:
            self._refuse(exc)
            return
        listing = [{"name": v.name, "status": v.status.value} for v in vms if principal.may_reach(v.name)]
        self.write(orjson.dumps({"vms": listing}))


class ConsoleCastHandler(_APIHandler):
    """``GET /api/vms/{name}/console.cast``: the held scrollback as an asciinema v2
    recording (needs ``console``; see ``vmws/recording.py``)."""

    async def get(self, name: str) -> None:
        try:
            principal = await self.auth.authenticate(credential(self.request))
            if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
                raise VMNotFound(f"no VM has a name longer than {_MAX_NAME_BYTES} bytes")
            principal.require(Permission.CONSOLE, name)  # before the lookup: existence does not leak
            await self.hub.backend.get(name)
        except VMWSError as exc:
            self._refuse(exc)
            return
        cast = scrollback_cast(self.hub.held_console_output(name), self.hub.now())
        self.set_header("Content-Type", MEDIA_TYPE)
        # The name is the client's: quoted (RFC 5987), so it cannot break out of the header.
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name, safe='')}.cast")
        self.write(cast.encode("utf-8"))


class MetricsHistoryHandler(_APIHandler):
    """``GET /api/vms/{name}/metrics?since=SECONDS`` (needs ``read`` and the VM in the
    token's ``vms``): the VM's held samples from SECONDS ago on (default: all of them),
    oldest first, each the ``metrics`` message's ``data`` plus its ``timestamp``."""

    def initialize(self, hub: Hub, auth: Authenticator, config: Config, history: MetricsHistory) -> None:  # type: ignore[override]
        super().initialize(hub, auth, config)
        self.history = history

    async def get(self, name: str) -> None:
        try:
            principal = await self.auth.authenticate(credential(self.request))
            principal.require(Permission.READ, name)  # before the lookup: existence does not leak
            raw = query_argument(self.request, "since", strip=False)
            if raw is not None and not _SECONDS.fullmatch(raw):
                raise InvalidCommand("'since' must be a number of seconds, like 600 or 2.5")
            if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
                raise VMNotFound(f"no VM has a name longer than {_MAX_NAME_BYTES} bytes")
            await self.hub.backend.get(name)
            now = self.hub.now()
            samples = await self.samples(name, float(raw) if raw is not None else now, now)  # default: all held
        except VMWSError as exc:
            self._refuse(exc)
            return
        self.write(orjson.dumps(samples))

    async def samples(self, name: str, seconds: float, now: float) -> list[dict[str, Any]]:
        """The held samples of the last ``seconds`` (a cluster node asks the VM's owner)."""
        return [sample_object(row) for row in self.history.since(name, seconds, now)]
