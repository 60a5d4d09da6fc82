"""Tornado handlers: translate between sockets and the hub/protocol (no logic of their own).

The upgrade is accepted first and checked after, so a browser can read why it was
refused: bad token → ``AUTH_ERROR`` + close 4001; missing permission or VM outside the
token's ``vms`` → ``AUTH_ERROR`` + 4003 (before lookup, so existence does not leak);
unknown VM → ``VM_NOT_FOUND`` + 4004; console of a VM not running → ``VM_NOT_RUNNING`` + 4009.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
import tornado.iostream
import tornado.web
import tornado.websocket
from tornado.websocket import _WebSocketParams

from vmws import protocol
from vmws.auth import CLOSE_UNAUTHENTICATED, Permission, Principal
from vmws.limits import TokenBucket
from vmws.tickets import TICKET_PREFIX, Authenticator
from vmws.wsprotocol import StrictWebSocketProtocol
from vmws.config import Config
from vmws.errors import AuthError, InvalidCommand, VMNotFound, VMNotRunning, VMWSError
from vmws.hub import Hub
from vmws.logs import redact

__all__ = ["MonitorSocket", "ConsoleSocket", "HealthHandler", "VMListHandler", "TicketHandler", "CLOSE_CODES"]

log = logging.getLogger("vmws.handlers")

CLOSE_NOT_FOUND = 4004
CLOSE_TOO_SLOW = 4008
CLOSE_NOT_RUNNING = 4009
CLOSE_TOO_MANY = 4029
# Close code for each error that ends a connection while it is being set up.
CLOSE_CODES: dict[type[VMWSError], int] = {VMNotFound: CLOSE_NOT_FOUND, VMNotRunning: CLOSE_NOT_RUNNING}
# Metrics and heartbeats are skipped for a peer with this much output unsent.
_DROPPABLE_BACKLOG = 256 * 1024


def bearer_token(request: Any) -> str | None:
    header: str = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def log_exception_redacted(handler: tornado.web.RequestHandler, typ: Any, value: Any, tb: Any) -> None:
    """Tornado's own version prints the request URI, token included."""
    log.error("uncaught error on %s %s", handler.request.method, redact(handler.request.uri or ""),
              exc_info=(typ, value, tb))


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Exact matches from the allow-list (scheme included), or the server's own host."""
    if origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


# The last text framed and its frame: a broadcast hands one str to every peer in
# turn, so it is encoded and framed once. The event loop is single-threaded.
_last_frame: tuple[str, tuple[bytes, ...]] = ("", ())
# Frames at least this large are written as header and payload: joining them copies
# the payload once more (14% of a console flood's CPU, py-spy), and Tornado keeps
# large writes by reference.
_SPLIT_FRAME = 16 * 1024


def _text_frame(text: str) -> tuple[bytes, ...]:
    """An unmasked, uncompressed WebSocket text frame (a server's) carrying ``text``,
    as the pieces to write in order."""
    global _last_frame
    if _last_frame[0] is text:
        return _last_frame[1]
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    pieces = (header, payload) if n >= _SPLIT_FRAME else (header + payload,)
    _last_frame = (text, pieces)
    return pieces


class _VMSocket(tornado.websocket.WebSocketHandler):
    """What both endpoints share: authentication, sending with flow control, heartbeats."""

    endpoint: protocol.Endpoint
    permission: Permission

    def initialize(self, hub: Hub, auth: Authenticator, config: Config) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config
        self.session_id = uuid.uuid4().hex
        self.user = "-"
        self.vm = ""
        self.principal: Principal | None = None
        self.last_seen = asyncio.get_event_loop().time()
        self._pending = 0
        self._closing = False
        self._expiry: asyncio.TimerHandle | None = None
        self._rate = TokenBucket(config.max_message_rate, 2 * config.max_message_rate, self.last_seen)
        self._rate_warned_at = float("-inf")
        self._counted = False

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.config.allowed_origins)

    def get_compression_options(self) -> None:
        return None  # console output is already dense; compression costs CPU per viewer

    def get_websocket_protocol(self) -> StrictWebSocketProtocol | None:
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None  # Tornado answers 426 Upgrade Required
        params = _WebSocketParams(
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size, compression_options=None,  # see get_compression_options
        )
        return StrictWebSocketProtocol(self, False, params)

    async def open(self, name: str) -> None:
        self.vm = name
        self.set_nodelay(True)
        try:
            principal = self.auth.authenticate(self.get_query_argument("token", None) or bearer_token(self.request))
            self.user = principal.sub
            principal.require(self.permission, name)
            if not self.hub.user_connections.acquire(principal.sub):
                raise AuthError(
                    f"too many connections for user {principal.sub!r} "
                    f"(limit {self.config.max_connections_per_user})", CLOSE_TOO_MANY,
                )
            self._counted = True
            self.principal = principal
            await self.backend_check(name)
            self.hub.register(self)
            self._schedule_expiry(principal)
            self.send(protocol.connection_message(
                vm=name, session_id=self.session_id, user=principal.sub,
                permissions=principal.permission_names(),
                heartbeat_interval=self.config.heartbeat_interval,
                metrics_interval=self.config.metrics_interval,
                now=self.hub.now(), extra=self.connection_extra(),
            ))
            await self.join_hub(name)
            log.info("%s open vm=%s user=%s session=%s", self.endpoint.value, name, self.user, self.session_id)
        except AuthError as exc:
            self._refuse(exc, exc.close_code)
        except VMWSError as exc:
            self._refuse(exc, CLOSE_CODES.get(type(exc), 1011))

    def _refuse(self, exc: VMWSError, code: int) -> None:
        log.info("%s refused vm=%s user=%s: %s %s", self.endpoint.value, self.vm, self.user, exc.code, exc.message)
        self.send(protocol.error_message(exc.code, exc.message, self.hub.now()))
        self.close(code, exc.message[:120])

    def _schedule_expiry(self, principal: Principal) -> None:
        delay = principal.expires_at - self.hub.now()
        self._expiry = asyncio.get_running_loop().call_later(max(0.0, delay), self._expired)

    def _expired(self) -> None:
        self.send(protocol.error_message("AUTH_ERROR", "token has expired", self.hub.now()))
        self.close(CLOSE_UNAUTHENTICATED, "token has expired")

    async def backend_check(self, name: str) -> None:
        """Raise the backend error that refuses this connection, if any."""
        await self.hub.backend.get(name)

    def connection_extra(self) -> dict[str, Any] | None:
        return None

    async def join_hub(self, name: str) -> None:
        raise NotImplementedError

    def leave_hub(self) -> None:
        pass

    def on_message(self, message: str | bytes) -> None:
        self.last_seen = now = asyncio.get_event_loop().time()
        if self.principal is None:
            return
        if not self._rate.allow(now):
            self._rate_limited(now)
            return
        try:
            parsed = protocol.parse_client_message(message, self.endpoint)
        except InvalidCommand as exc:
            self.send(protocol.error_message(exc.code, exc.message, self.hub.now(), request_id=exc.request_id))
            return
        if isinstance(parsed, protocol.Heartbeat):
            self.send(protocol.heartbeat_message(parsed.data, self.hub.now()))
        else:
            self.handle(parsed)

    def handle(self, message: protocol.ClientMessage) -> None:
        raise NotImplementedError

    def _rate_limited(self, now: float) -> None:
        """Drop the message; say so at most once a second, so the answer is no flood itself."""
        if now - self._rate_warned_at < 1.0:
            return
        self._rate_warned_at = now
        limit = self.config.max_message_rate
        log.warning("rate limit: %s (%s) on %s sends over %g messages/s", self.session_id, self.user, self.vm, limit)
        self.send(protocol.error_message(
            "INVALID_COMMAND", f"rate limit exceeded: over {limit:g} messages/s; messages dropped", self.hub.now(),
        ))

    def on_pong(self, data: bytes) -> None:
        self.last_seen = asyncio.get_event_loop().time()

    def on_close(self) -> None:
        self._closing = True
        if self._expiry:
            self._expiry.cancel()
        if self._counted:
            self._counted = False
            self.hub.user_connections.release(self.user)
        if self.principal is not None:
            self.leave_hub()
            self.hub.unregister(self)
            log.info(
                "%s closed vm=%s user=%s session=%s code=%s",
                self.endpoint.value, self.vm, self.user, self.session_id, self.close_code,
            )

    # Peer

    def send(self, text: str, *, droppable: bool = False) -> None:
        if self._closing or self.ws_connection is None:
            return
        if droppable and self._pending > _DROPPABLE_BACKLOG:
            return  # metrics are cumulative: the next one carries everything
        pieces = _text_frame(text)
        size = sum(len(piece) for piece in pieces)  # bytes on the wire, not characters
        if self._pending + size > self.config.max_pending_bytes:
            log.warning(
                "closing %s (%s) on %s: client too slow, %d bytes unsent",
                self.session_id, self.user, self.vm, self._pending,
            )
            self.close(CLOSE_TOO_SLOW, "client too slow: output backlog over limit")
            return
        connection = self.ws_connection
        if connection.is_closing() or connection.stream is None:
            self._closing = True
            return
        # Straight to the stream with a frame built once per message, not through
        # write_message: that encodes and frames per peer and wraps every write in a
        # task (py-spy, 1,000 watchers: 65% of the server in write_message, 21% of it
        # in ensure_future).
        try:
            for piece in pieces:
                future = connection.stream.write(piece)
        except tornado.iostream.StreamClosedError:
            self._closing = True
            return
        if future.done():  # the kernel took it all at once (the usual case)
            if not future.cancelled():
                future.exception()
            return
        self._pending += size
        future.add_done_callback(lambda f: self._sent(f, size))

    @property
    def pending_bytes(self) -> int:
        """Output bytes queued for this peer and not yet written to its socket."""
        return self._pending

    @property
    def closing(self) -> bool:
        return self._closing

    def _sent(self, future: Any, size: int) -> None:
        self._pending -= size
        if not future.cancelled():
            future.exception()  # retrieved, so a closed stream is not logged as unhandled

    def ping(self, data: str | bytes = b"") -> None:
        try:
            super().ping(data)
        except tornado.websocket.WebSocketClosedError:
            self._closing = True

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._closing:
            return
        self._closing = True
        super().close(code, reason)


class MonitorSocket(_VMSocket):
    """``/ws/vms/{name}``: status, metrics and commands."""

    endpoint = protocol.Endpoint.MONITOR
    permission = Permission.READ

    async def join_hub(self, name: str) -> None:
        await self.hub.add_watcher(name, self)

    def leave_hub(self) -> None:
        self.hub.remove_watcher(self.vm, self)

    def handle(self, message: protocol.ClientMessage) -> None:
        assert isinstance(message, protocol.Command) and self.principal is not None
        if Permission.CONTROL not in self.principal.permissions:
            self.send(protocol.error_message(
                "AUTH_ERROR", "token lacks the 'control' permission needed for commands",
                self.hub.now(), request_id=message.request_id,
            ))
            return
        self.hub.spawn(self.hub.run_command(self.vm, message, self))


class ConsoleSocket(_VMSocket):
    """``/ws/vms/{name}/console``: shared serial console with scrollback replay."""

    endpoint = protocol.Endpoint.CONSOLE
    permission = Permission.CONSOLE

    async def backend_check(self, name: str) -> None:
        # Open (or find) the shared console before saying "connected": raises
        # VMNotFound / VMNotRunning for the refusal.
        self._channel = await self.hub.console(name)
        self.hub.admit_viewer(self._channel, self.user)

    def _since(self) -> int | None:
        raw = self.get_query_argument("since", None)
        if raw is None:
            return None
        if not raw.isdigit():
            raise InvalidCommand("'since' must be a byte offset (a whole number)")
        return int(raw)

    async def open(self, name: str) -> None:
        try:
            self._since_offset = self._since()
        except InvalidCommand as exc:
            self._refuse(exc, 1008)
            return
        await super().open(name)

    async def join_hub(self, name: str) -> None:
        self._channel.add_viewer(self, self._since_offset)

    def leave_hub(self) -> None:
        self.hub.remove_viewer(self.vm, self)

    def handle(self, message: protocol.ClientMessage) -> None:
        assert isinstance(message, protocol.ConsoleInput)
        self.hub.console_input(self.vm, message.content)


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(b'{"status":"ok"}')


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

    def _error(self, status: int, exc: VMWSError) -> None:
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
            ticket = self.auth.tickets.issue(self.auth.verifier.verify(token))
        except AuthError as exc:
            self._error(429 if exc.close_code == CLOSE_TOO_MANY else 401, exc)
            return
        self.set_status(201)
        self.write(orjson.dumps({"ticket": ticket, "expiresIn": self.auth.tickets.ttl}))


class VMListHandler(_APIHandler):
    """``GET /api/vms``: name and status of every VM the token may reach (needs ``read``)."""

    async def get(self) -> None:
        try:
            principal = self.auth.authenticate(self.get_query_argument("token", None) or bearer_token(self.request))
            principal.require(Permission.READ)
            vms = await self.hub.backend.list()
        except AuthError as exc:
            status = 401 if exc.close_code == CLOSE_UNAUTHENTICATED else 403
            self._error(status, exc)
            return
        except VMWSError as exc:
            self._error(503, exc)
            return
        listing = [{"name": v.name, "status": v.status.value} for v in vms if principal.may_reach(v.name)]
        self.write(orjson.dumps({"vms": listing}))
