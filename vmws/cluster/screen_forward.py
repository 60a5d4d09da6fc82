"""A VM's screen on a node that does not own the VM: the WebSocket forwarded to its owner.

A screen is a stream of framebuffer updates: relaying it through Redis would swamp it,
and only the owner can open the VM's VNC server (libvirt passes its socket only
locally). So the node the client reached authenticates and authorizes the client as
for any socket, reads the owner's address from its liveness record
(``vmws:node:NAME``'s ``url``, from ``--advertise-url``), buys a one-use cluster ticket
for the same user, and opens the owner's ``/ws/vms/{name}/screen`` with it. The RFB
bytes then pass unchanged both ways (the owner does the handshake and drops a
view-only viewer's input); each write is awaited before the next read on either side.

The ticket is narrowed to what the forward needs: this one VM (``=NAME``), and for a
view-only viewer ``watch`` instead of ``console``, so the owner keeps the viewer
view-only whatever reaches it. It names the forwarding node (``via``): the owner does
not audit the session (the forwarding node does, with the client's address and bytes)
and never forwards it again.

The owner's URL comes from Redis: trusted, but checked like any input (``http`` or
``https``, a host, no credentials, query or fragment, bounded) before it is used.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import tornado.httpclient
import tornado.iostream
import tornado.websocket

from vmws.auth import Permission, Principal
from vmws.cluster.membership import parse_node_value
from vmws.cluster.relay import RelayUnavailable
from vmws.codes import CloseCode

__all__ = [
    "ScreenElsewhere",
    "ScreenForward",
    "check_node_url",
    "default_node_url",
    "node_url_of",
    "forward_principal",
    "CONNECT_TIMEOUT",
]

log = logging.getLogger("vmws.cluster")

# Seconds the owner gets to accept the forwarded WebSocket.
CONNECT_TIMEOUT = 10.0
MAX_URL_CHARS = 1000
# The owner sends at most 256 KiB of RFB per frame (vmws/screen/handler.py): room to spare.
MAX_FRAME_BYTES = 1024 * 1024
# Close codes a WebSocket peer may put in a close frame (RFC 6455 §7.4): others are
# never mirrored to the client.
_RESERVED = frozenset({1004, 1005, 1006, 1015})


class ScreenElsewhere(Exception):
    """The VM's screen is served by another node, reachable at ``url``."""

    def __init__(self, node: str, url: str) -> None:
        super().__init__(node)
        self.node = node
        self.url = url


def check_node_url(url: str) -> str:
    """``url`` if it is a node's address (``http(s)://HOST[:PORT][/PREFIX]``), else ``ValueError``
    naming the problem."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"a node URL is at most {MAX_URL_CHARS} characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError("a node URL holds no spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("a node URL starts with http:// or https://")
    if not parts.hostname:
        raise ValueError("a node URL names a host")
    if "@" in parts.netloc:
        raise ValueError("a node URL carries no user or password")
    if parts.query or parts.fragment:
        raise ValueError("a node URL has no query or fragment")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        raise ValueError("a node URL's port must be a number from 0 to 65535") from None
    return url


def default_node_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` of the listener; a wildcard address becomes the host's name."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


def node_url_of(raw: object, node: str) -> str | None:
    """The ``url`` of a ``vmws:node:NAME`` value; None when it has none (a node of an
    older version) or one that is not a node URL (logged)."""
    value = parse_node_value(raw)
    url = value.get("url") if value is not None else None
    if url is None:
        return None
    try:
        if not isinstance(url, str):
            raise ValueError("its url is not a string")
        return check_node_url(url)
    except ValueError as exc:
        log.warning("node %r advertises an unusable URL, its screens are not forwarded: %s", node[:255], exc)
        return None


def forward_principal(principal: Principal, vm: str, *, view_only: bool, via: str) -> Principal:
    """What the forwarding ticket carries: the same user, this VM only, view-only kept."""
    permissions = set(principal.permissions)
    if view_only:
        permissions.discard(Permission.CONSOLE)
        permissions.add(Permission.WATCH)
    return dataclasses.replace(principal, permissions=frozenset(permissions), vms=("=" + vm,), via=via)


def _screen_url(node_url: str, vm: str, ticket: str, *, view_only: bool) -> str:
    parts = urlsplit(node_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = {"token": ticket, **({"mode": "watch"} if view_only else {})}
    path = parts.path.rstrip("/") + f"/ws/vms/{quote(vm, safe='')}/screen"
    return f"{scheme}://{parts.netloc}{path}?{urlencode(query)}"


class ScreenForward:
    """One client's screen WebSocket to the VM's owner node."""

    def __init__(self, node: str, connection: tornado.websocket.WebSocketClientConnection) -> None:
        self.node = node
        self._connection = connection

    @classmethod
    async def open(cls, owner: ScreenElsewhere, vm: str, ticket: str, *, view_only: bool) -> ScreenForward:
        """Connect to the owner; ``RelayUnavailable`` (1013) when it cannot be reached
        or does not accept the WebSocket."""
        request = tornado.httpclient.HTTPRequest(
            _screen_url(owner.url, vm, ticket, view_only=view_only),
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=CONNECT_TIMEOUT,
        )
        try:
            connection = await tornado.websocket.websocket_connect(
                request, subprotocols=["binary"], max_message_size=MAX_FRAME_BYTES
            )
        except tornado.httpclient.HTTPClientError as exc:
            raise RelayUnavailable(
                f"the screen's node {owner.node!r} did not accept the forward (HTTP {exc.code}): try again later"
            ) from None
        except (OSError, TimeoutError, tornado.iostream.StreamClosedError):
            raise RelayUnavailable(f"the screen's node {owner.node!r} cannot be reached: try again later") from None
        return cls(owner.node, connection)

    async def send(self, message: str | bytes) -> None:
        """One frame to the owner, once its socket took it (the client's backpressure)."""
        try:
            await self._connection.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            return  # the owner's side ended: ``receive`` returns None and the client is closed

    async def receive(self) -> str | bytes | None:
        """The owner's next frame; None once it closed."""
        message: Any = await self._connection.read_message()
        return message if isinstance(message, str | bytes) else None

    def close_to_mirror(self) -> tuple[int, str]:
        """The close code and reason the client gets, after ``receive`` returned None:
        the owner's own, or 1013 when its connection broke without one."""
        code, reason = self._connection.close_code, self._connection.close_reason
        if code is None or not 1000 <= code <= 4999 or code in _RESERVED:
            return CloseCode.TRY_AGAIN_LATER, f"the screen's node {self.node!r} went away: try again later"
        return code, reason or ""

    def close(self) -> None:
        self._connection.close(CloseCode.NORMAL_CLOSURE)
