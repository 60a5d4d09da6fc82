"""WebSocket handlers: translate between sockets and the hub/protocol (no logic of their own).

The REST handlers are in ``vmws/rest.py``, the wire framing in ``vmws/framing.py``.

The upgrade is accepted first and checked after, so a browser can read why it was
refused: bad token → ``AUTH_ERROR`` + close 4001; missing permission or VM outside the
token's ``vms`` → ``AUTH_ERROR`` + 4003 (before lookup, so existence does not leak);
unknown VM → ``VM_NOT_FOUND`` + 4004; console of a VM not running → ``VM_NOT_RUNNING`` + 4009;
console on a backend without consoles → 4005. Whatever ``open()`` took (a connection slot,
a place in the hub) is given back on every path, and every refusal ends with a close frame
whose reason is a fixed phrase (never raw input, always within a close frame's 123 bytes).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
import tornado.httputil
import tornado.web
import tornado.websocket

from vmws import protocol
from vmws.auth import Permission, Principal
from vmws.backend import Capability
from vmws.codes import CloseCode, ErrorCode
from vmws.config import Config
from vmws.errors import AuthError, InvalidCommand, NoConsole, NoScreen, VMNotFound, VMNotRunning, VMWSError
from vmws.framing import StrictWebSocketProtocol, strict_protocol, text_frame, write_frame
from vmws.http_request import credential, log_exception_redacted, query_argument
from vmws.hub import Hub
from vmws.limits import TokenBucket
from vmws.logs import log_context, redact
from vmws.presence import ConsoleMode
from vmws.tickets import Authenticator

__all__ = [
    "MonitorSocket",
    "ConsoleSocket",
    "CLOSE_CODES",
    "MAX_NAME_BYTES",
    "fit_close_reason",
    "viewer_mode",
    "read_mode",
]

log = logging.getLogger("vmws.handlers")

# Close code for each error that ends a connection while it is being set up
# (AuthError carries its own, 4001 / 4003 / 4029).
CLOSE_CODES: dict[type[VMWSError], CloseCode] = {
    VMNotFound: CloseCode.VM_NOT_FOUND,
    VMNotRunning: CloseCode.VM_NOT_RUNNING,
    NoConsole: CloseCode.NO_CONSOLE,
    NoScreen: CloseCode.NO_SCREEN,
    InvalidCommand: CloseCode.POLICY_VIOLATION,
}
# The close reason of each refusal: a fixed phrase, so no name, subject or token is ever
# quoted in it (the `error` message before the close frame carries the detail).
_CLOSE_REASONS = {
    CloseCode.UNAUTHENTICATED: "not authenticated",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.VM_NOT_FOUND: "no such VM",
    CloseCode.NO_CONSOLE: "this server's backend has no consoles",
    CloseCode.NO_SCREEN: "no graphical screen",
    CloseCode.VM_NOT_RUNNING: "VM is not running",
    CloseCode.TOO_MANY: "too many connections",
    CloseCode.POLICY_VIOLATION: "invalid request",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.TRY_AGAIN_LATER: "try again later",
}
# RFC 6455 §5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
MAX_CLOSE_REASON_BYTES = 123
# No VM has a longer name (libvirt's limit is lower still); longer ones are not looked up.
MAX_NAME_BYTES = 255
# `?since=`: ASCII digits only (str.isdigit() also takes "²" and "٣"), and few enough
# that int() never meets its 4,300-digit limit.
_OFFSET = re.compile(r"[0-9]{1,19}")
# `?mode=` of the console endpoint.
_MODES = {mode.value: mode for mode in ConsoleMode}
# `?epoch=`: what the server hands out is 16 hex digits; anything this shape is compared.
_EPOCH = re.compile(r"[0-9A-Za-z_-]{1,64}")
# Metrics and heartbeats are skipped for a peer with this much output unsent.
_DROPPABLE_BACKLOG = 256 * 1024


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 UTF-8 bytes a close frame holds, never inside a character."""
    return reason.encode("utf-8", "replace")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def read_mode(request: tornado.httputil.HTTPServerRequest) -> ConsoleMode | None:
    """``?mode=`` of a console or screen request: None when absent."""
    mode = query_argument(request, "mode", strip=False)
    if mode is not None and mode not in _MODES:
        raise InvalidCommand("'mode' must be 'interactive' or 'watch'")
    return None if mode is None else _MODES[mode]


def viewer_mode(principal: Principal, name: str, asked: ConsoleMode) -> ConsoleMode:
    """The mode a console or screen viewer gets, or the ``AuthError`` that refuses it.

    A token holding ``watch`` but not ``console`` is watch-only whatever ``?mode=``
    asked: the token decides, not the client.
    """
    if Permission.CONSOLE not in principal.permissions and Permission.WATCH in principal.permissions:
        principal.require(Permission.WATCH, name)
        return ConsoleMode.WATCH
    principal.require(Permission.CONSOLE, name)
    return asked


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Exact matches from the allow-list (scheme included), or the server's own host."""
    if origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


class _VMSocket(tornado.websocket.WebSocketHandler):
    """What both endpoints share: authentication, sending with flow control, heartbeats."""

    endpoint: protocol.Endpoint
    permission: Permission
    # Each connection's own fields live in slots, not in the handler's __dict__: Tornado's
    # RequestHandler already fills that dict near the size CPython shares keys for, and
    # these pushed it into a dict of its own, 1.6 KB per connection (tracemalloc, 1,000
    # console viewers; docs/performance.md). Attributes not listed still work (__dict__).
    __slots__ = (
        "hub",
        "auth",
        "config",
        "session_id",
        "user",
        "vm",
        "principal",
        "last_seen",
        "_pending",
        "_closing",
        "_expiry",
        "_rate",
        "_rate_warned_at",
        "_counted",
        "_in_hub",
        "_opened",
        "bytes_in",
        "bytes_out",
    )

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
        self._expiry: int | None = None  # its key in hub.expiries
        self._rate = TokenBucket(config.max_message_rate, 2 * config.max_message_rate, self.last_seen)
        self._rate_warned_at = float("-inf")
        self._counted = False  # holds a slot of hub.user_connections
        self._in_hub = False  # registered with the hub (maybe watching or viewing)
        self._opened = False  # got through open(): its close is logged
        self.bytes_in = 0  # message payload bytes received, and wire bytes sent (audit)
        self.bytes_out = 0

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    def _log_context(self) -> dict[str, str]:
        return log_context(vm=self.vm, user=self.user, session=self.session_id)

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.config.allowed_origins)

    def get_compression_options(self) -> None:
        return None  # console output is already dense; compression costs CPU per viewer

    def get_websocket_protocol(self) -> StrictWebSocketProtocol | None:
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None  # Tornado answers 426 Upgrade Required
        return strict_protocol(self)

    async def open(self, name: str) -> None:
        self.vm = name
        self.set_nodelay(True)
        try:
            await self._admit(name)
        except _ClientGone:
            self._release()  # it left while we were waiting on the backend
        except VMWSError as exc:
            self._release()
            # AuthError (4001 / 4003 / 4029) and a cluster's VMUnavailable (1013) carry their own.
            own: CloseCode | None = getattr(exc, "close_code", None)
            code = own or CLOSE_CODES.get(type(exc), CloseCode.INTERNAL_ERROR)
            self._refuse(exc, code)
        except Exception:
            # A bug, not the client's doing: logged with its traceback, and the client
            # still gets a close frame rather than a dropped connection.
            log.exception(
                "%s open failed vm=%s user=%s session=%s",
                self.endpoint.value,
                name,
                self.user,
                self.session_id,
                extra=self._log_context(),
            )
            self._release()
            self._refuse(VMWSError("internal error while opening the connection"), CloseCode.INTERNAL_ERROR)
        else:
            self._forget_credentials()
            self._opened = True
            self.hub.oversight.session_opened(self)
            log.info(
                "%s open vm=%s user=%s session=%s remote=%s",
                self.endpoint.value,
                name,
                self.user,
                self.session_id,
                self.request.remote_ip,  # the client's, behind a --trusted-proxy balancer
                extra=self._log_context(),
            )

    async def _admit(self, name: str) -> None:
        """Every step of setting up a connection; each raises to refuse it. What a step
        takes is recorded (``_counted``, ``_in_hub``, ``_expiry``) for ``_release``."""
        self.read_query()
        principal = await self.auth.authenticate(credential(self.request))
        self.user = principal.sub
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise VMNotFound(f"no VM has a name longer than {MAX_NAME_BYTES} bytes")
        self.authorize(principal, name)
        if not self.hub.user_connections.acquire(principal.sub):
            raise AuthError(
                f"too many connections for this user (limit {self.config.max_connections_per_user})",
                CloseCode.TOO_MANY,
            )
        self._counted = True
        self.principal = principal
        await self.backend_check(name)
        self._check_still_here()
        self._in_hub = True
        self.hub.register(self)
        self._schedule_expiry(principal)
        self.send(
            protocol.connection_message(
                vm=name,
                session_id=self.session_id,
                user=principal.sub,
                permissions=principal.permission_names(),
                heartbeat_interval=self.config.heartbeat_interval,
                metrics_interval=self.config.metrics_interval,
                now=self.hub.now(),
                extra=self.connection_extra(),
            )
        )
        await self.join_hub(name)
        self._check_still_here()

    def _forget_credentials(self) -> None:
        """Once admitted, the request stops holding the token: a JWT (about 250 characters)
        was kept four times for the connection's life (the URI, the query and both parsed
        argument dicts), 0.8 KB per connection (tracemalloc; docs/performance.md). The
        access line is already written (Tornado logs the 101 before ``open``); later log
        lines quote the URI redacted, as they did."""
        request = self.request
        for arguments in (request.query_arguments, request.arguments):
            arguments.pop("token", None)
        request.uri = redact(request.uri or "")
        request.query = redact(request.query)

    def _check_still_here(self) -> None:
        if self._closing or self.ws_connection is None:
            raise _ClientGone()

    def _release(self) -> None:
        """Give back whatever ``open()`` took; safe to call more than once."""
        self.principal = None  # messages arriving from now on are ignored
        if self._expiry is not None:
            self.hub.expiries.cancel(self._expiry)
            self._expiry = None
        if self._counted:
            self._counted = False
            self.hub.user_connections.release(self.user)
        if self._in_hub:
            self._in_hub = False
            self.leave_hub()
            self.hub.unregister(self)

    def _refuse(self, exc: VMWSError, code: CloseCode) -> None:
        self.hub.oversight.refused(exc, self.request.remote_ip, sub=self.principal_sub, where=self.endpoint.value)
        log.info(
            "%s refused vm=%s user=%s remote=%s: %s %s",
            self.endpoint.value,
            self.vm,
            self.user,
            self.request.remote_ip,
            exc.code,
            exc.message,
            extra=self._log_context(),
        )
        reason = self.refusal_reason(exc, code)
        try:
            message = protocol.error_message(exc.code, exc.message, self.hub.now())
        except orjson.JSONEncodeError:  # the message quotes text that is not valid Unicode
            message = protocol.error_message(exc.code, reason, self.hub.now())
        self.send(message)
        self.close(code, reason)

    def refusal_reason(self, exc: VMWSError, code: CloseCode) -> str:
        """The close reason of a refusal: a fixed phrase per code (the ``error`` message
        before the close frame carries the detail)."""
        return _CLOSE_REASONS.get(code, "connection refused")

    def _schedule_expiry(self, principal: Principal) -> None:
        delay = principal.expires_at - self.hub.now()
        self._expiry = self.hub.expiries.add(delay, self._expired)  # one timer for all (vmws/expiries.py)

    def _expired(self) -> None:
        self.send(protocol.error_message(ErrorCode.AUTH_ERROR, "token has expired", self.hub.now()))
        self.close(CloseCode.UNAUTHENTICATED, "token has expired")

    @property
    def principal_sub(self) -> str | None:
        """The token's ``sub`` once it was read (a refusal after that names it)."""
        return None if self.user == "-" else self.user

    def authorize(self, principal: Principal, name: str) -> None:
        """Raise the ``AuthError`` (4003) that keeps ``principal`` off this endpoint, if any."""
        principal.require(self.permission, name)

    def read_query(self) -> None:
        """Read the endpoint's own query arguments; raise to refuse the connection."""
        query_argument(self.request, "token")  # UndecodableQuery before anything else

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
        self.bytes_in += len(message)
        if self.principal is None:
            return
        if not self._rate.allow(now):
            self._rate_limited(now)
            return
        try:
            parsed = protocol.parse_client_message(message, self.endpoint)
        except InvalidCommand as exc:
            self.hub.oversight.telemetry.received(None, len(message))
            self.send(protocol.error_message(exc.code, exc.message, self.hub.now(), request_id=exc.request_id))
            return
        self.hub.oversight.telemetry.received(parsed, len(message))
        if isinstance(parsed, protocol.Heartbeat):
            try:
                echo = protocol.heartbeat_message(parsed.data, self.hub.now())
            except orjson.JSONEncodeError:  # nested over 255 levels: orjson will not write it
                echo = protocol.error_message(
                    ErrorCode.INVALID_COMMAND,
                    "heartbeat 'data' is nested too deeply to echo",
                    self.hub.now(),
                )
            self.send(echo)
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
        log.warning(
            "rate limit: %s (%s) on %s sends over %g messages/s",
            self.session_id,
            self.user,
            self.vm,
            limit,
            extra=self._log_context(),
        )
        self.send(
            protocol.error_message(
                ErrorCode.INVALID_COMMAND,
                f"rate limit exceeded: over {limit:g} messages/s; messages dropped",
                self.hub.now(),
            )
        )

    def on_pong(self, data: bytes) -> None:
        self.last_seen = asyncio.get_event_loop().time()

    def on_close(self) -> None:
        self._closing = True
        self._release()
        if self._opened:
            self._opened = False
            self.hub.oversight.session_closed(self)
            log.info(
                "%s closed vm=%s user=%s session=%s code=%s",
                self.endpoint.value,
                self.vm,
                self.user,
                self.session_id,
                self.close_code,
                extra=self._log_context(),
            )

    # Peer

    def send(self, text: str, *, droppable: bool = False) -> None:
        if self._closing or self.ws_connection is None:
            return
        if droppable and self._pending > _DROPPABLE_BACKLOG:
            return  # metrics are cumulative: the next one carries everything
        pieces = text_frame(text)
        size = sum(len(piece) for piece in pieces)  # bytes on the wire, not characters
        if self._pending + size > self.config.max_pending_bytes:
            log.warning(
                "closing %s (%s) on %s: client too slow, %d bytes unsent",
                self.session_id,
                self.user,
                self.vm,
                self._pending,
                extra=self._log_context(),
            )
            self.close(CloseCode.TOO_SLOW, "client too slow: output backlog over limit")
            return
        # Straight to the stream with a frame built once per message (vmws/framing.py).
        future = write_frame(self.ws_connection, pieces)
        if future is None:
            self._closing = True
            return
        self.bytes_out += size
        self.hub.oversight.telemetry.sent(text, size)
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
        self.hub.oversight.telemetry.closed_by_server(code)
        super().close(code, None if reason is None else fit_close_reason(reason))


class _ClientGone(Exception):
    """The client went away while ``open()`` waited."""


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
            self.hub.oversight.command(self.vm, self, message, message.request_id, "forbidden", time.monotonic())
            self.send(
                protocol.error_message(
                    ErrorCode.AUTH_ERROR,
                    "token lacks the 'control' permission needed for commands",
                    self.hub.now(),
                    request_id=message.request_id,
                )
            )
            return
        self.hub.spawn(self.hub.run_command(self.vm, message, self))


class ConsoleSocket(_VMSocket):
    """``/ws/vms/{name}/console``: shared serial console with scrollback replay.

    ``?mode=watch`` joins watch-only: its ``console_input`` is refused with ``AUTH_ERROR``
    and the connection stays. A token holding ``watch`` but not ``console`` is watch-only
    whatever the query says: the token decides, not the client.
    """

    endpoint = protocol.Endpoint.CONSOLE
    permission = Permission.CONSOLE
    mode = ConsoleMode.INTERACTIVE
    __slots__ = ("_channel", "_since_offset", "_since_epoch")  # as _VMSocket's
    _seated = False  # holds a cluster-wide console seat (vmws/cluster/viewer_caps.py)

    def authorize(self, principal: Principal, name: str) -> None:
        # Runs after read_query: a watch-only token overrides whatever ?mode= asked for.
        self.mode = viewer_mode(principal, name, self.mode)

    async def backend_check(self, name: str) -> None:
        if Capability.CONSOLE not in self.hub.backend.capabilities:
            await self.hub.backend.get(name)  # an unknown VM is still VM_NOT_FOUND
            self.hub.backend.check_capability(Capability.CONSOLE, "open a VM's serial console")
        # Open (or find) the shared console before saying "connected": raises
        # VMNotFound / VMNotRunning for the refusal.
        self._channel = await self.hub.console(name)
        self.hub.admit_viewer(self._channel, self.user)
        self._seated = await self.hub.take_console_seat(name, self)

    def _release(self) -> None:
        super()._release()
        if self._seated:
            self._seated = False  # a cluster-wide seat: given back on every path
            self.hub.give_back_console_seat(self.vm, self)

    def read_query(self) -> None:
        raw = query_argument(self.request, "since", strip=False)
        if raw is not None and not _OFFSET.fullmatch(raw):
            raise InvalidCommand("'since' must be a byte offset: a whole number of at most 19 digits 0-9")
        self._since_offset = None if raw is None else int(raw)
        self.mode = read_mode(self.request) or self.mode
        epoch = query_argument(self.request, "epoch", strip=False)
        if epoch is not None and not _EPOCH.fullmatch(epoch):
            raise InvalidCommand("'epoch' must be the epoch of a console message: 1-64 letters, digits, '-' or '_'")
        self._since_epoch = epoch

    def connection_extra(self) -> dict[str, Any] | None:
        return {"epoch": self._channel.epoch} if self._channel.epoch is not None else None

    async def join_hub(self, name: str) -> None:
        since = self._since_offset
        if self._since_epoch is not None and self._since_epoch != self._channel.epoch:
            since = None  # offsets of a lost history: all that is held now, in the new epoch
        self._channel.add_viewer(self, since, self.mode)

    # Input and leaving go to this socket's own channel (the one it joined), not back
    # through the hub by VM name: a channel that finished stays finished for its viewers.

    def leave_hub(self) -> None:
        self._channel.remove_viewer(self)

    def handle(self, message: protocol.ClientMessage) -> None:
        assert isinstance(message, protocol.ConsoleInput)
        if self.mode is ConsoleMode.WATCH:
            self.send(protocol.error_message(ErrorCode.AUTH_ERROR, self._watch_only_reason(), self.hub.now()))
            return
        self.hub.oversight.telemetry.typed(len(message.content.encode("utf-8", "surrogatepass")))
        self._channel.write(message.content)

    def _watch_only_reason(self) -> str:
        assert self.principal is not None
        if Permission.CONSOLE not in self.principal.permissions:
            return "console input refused: the token grants only 'watch' (watch-only console access)"
        return "console input refused: this session joined watch-only (?mode=watch)"
