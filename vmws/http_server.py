"""vmws's HTTP server: Tornado's, with a deadline on every request's headers and the real
client address behind a trusted balancer (``docs/hardening.md``).

Tornado knows nothing of the PROXY protocol, so it is read here, where a connection is
accepted and before Tornado's HTTP parser sees a byte: from a ``--trusted-proxy`` peer
only, the connection's first bytes are peeked at (not consumed); a PROXY v1/v2 header is
read, bounded in size, within ``--header-timeout``, and the connection is handed over
with the client's address in place of the balancer's. Everything that reads
``request.remote_ip`` (the access log, audit events, log lines) then names the client.
From any other peer nothing is peeked: a PROXY header is then not HTTP, and Tornado
answers 400 and closes, as for any malformed request.

``X-Forwarded-For`` is read per request, from trusted peers only (``TrustedProxies``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import weakref
from typing import Any

import tornado.http1connection
import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.iostream

from vmws import proxy_protocol
from vmws.client_address import TrustedProxies

__all__ = ["DeadlineHTTPServer"]

log = logging.getLogger("vmws.proxy")

# While a trusted peer's first bytes could still be either a PROXY header or HTTP (one
# byte "P"), look again after this long rather than spin on a readable socket.
_UNDECIDED_POLL = 0.005


class _BadHeader(Exception):
    """The peer's PROXY header is refused; the connection is closed."""


class DeadlineHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with a deadline on every request's line and headers, and
    client addresses from trusted proxies.

    Tornado gives each request one deadline for its line and headers, counted from when
    it starts waiting for them, so a trickle of header lines cannot extend it (Slowloris).
    The first request of a connection gets ``header_timeout`` (less what a PROXY header
    took); on a kept-alive connection the wait for the next request (idle time and
    headers together) gets ``idle_timeout``.
    """

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self.trusted = TrustedProxies()
        # Streams from trusted peers: when they were accepted (the PROXY header's time
        # comes off the first request's deadline) and the address requests start from.
        self._proxied: weakref.WeakKeyDictionary[object, tuple[float, str]] = weakref.WeakKeyDictionary()
        # Trusted peers' connections whose PROXY header is being read (not yet Tornado's).
        self._reading_headers: set[asyncio.Future[None]] = set()

    def configure_deadlines(self, header_timeout: float, idle_timeout: float) -> None:
        def params(wait: float) -> tornado.http1connection.HTTP1ConnectionParameters:
            chosen = copy.copy(self.conn_params)
            chosen.header_timeout = wait
            chosen.body_timeout = header_timeout  # a request body gets no longer than its headers
            return chosen

        self._header_timeout = header_timeout
        self._idle_params = params(idle_timeout)
        self.conn_params = params(header_timeout)
        self._served: weakref.WeakSet[object] = weakref.WeakSet()

    def trust_proxies(self, trusted: TrustedProxies) -> None:
        self.trusted = trusted

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        if not self.trusted or not isinstance(address, tuple) or not self.trusted.trusts(str(address[0])):
            super().handle_stream(stream, address)
            return
        task = asyncio.ensure_future(self._handle_proxied(stream, address))
        self._reading_headers.add(task)
        task.add_done_callback(self._reading_headers.discard)

    async def close_all_connections(self) -> None:
        for task in list(self._reading_headers):
            task.cancel()  # closes its stream
        await asyncio.gather(*self._reading_headers, return_exceptions=True)
        await super().close_all_connections()

    async def _handle_proxied(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        peer = str(address[0])
        try:
            header = await asyncio.wait_for(_read_proxy_header(stream), self._header_timeout)
        except asyncio.CancelledError:
            stream.close()  # the server is stopping
            raise
        except _BadHeader as exc:
            log.info("closing the connection from trusted proxy %s: %s", peer, exc)
            stream.close()
            return
        except TimeoutError:
            log.info("closing the connection from trusted proxy %s: no PROXY header or request in time", peer)
            stream.close()
            return
        except (tornado.iostream.StreamClosedError, OSError):
            stream.close()  # the balancer hung up (a TCP health check does exactly this)
            return
        if stream.closed():
            return
        if header is not None and header.source is not None:
            address = header.source
        self._proxied[stream] = (accepted, str(address[0]))
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        stream = getattr(server_conn, "stream", None)
        proxied = self._proxied.get(stream) if stream is not None else None
        if server_conn in self._served and isinstance(request_conn, tornado.http1connection.HTTP1Connection):
            request_conn.params = self._idle_params  # a kept-alive connection's next request
        else:
            self._served.add(server_conn)
            if proxied is not None and isinstance(request_conn, tornado.http1connection.HTTP1Connection):
                # One deadline for the PROXY header and the first request's headers.
                spent = asyncio.get_running_loop().time() - proxied[0]
                request_conn.params = copy.copy(self.conn_params)
                request_conn.params.header_timeout = max(0.001, self._header_timeout - spent)
        delegate = super().start_request(server_conn, request_conn)
        if proxied is None:
            return delegate
        return _ForwardedFor(delegate, request_conn, proxied[1], self.trusted)


class _ForwardedFor(tornado.httputil.HTTPMessageDelegate):
    """Sets the request's client address from ``X-Forwarded-For`` before the request is
    built (a trusted peer's requests only; each request of a kept-alive connection
    starts again from the connection's address)."""

    def __init__(
        self,
        delegate: tornado.httputil.HTTPMessageDelegate,
        request_conn: tornado.httputil.HTTPConnection,
        connection_ip: str,
        trusted: TrustedProxies,
    ) -> None:
        self.delegate = delegate
        self.request_conn = request_conn
        self.connection_ip = connection_ip
        self.trusted = trusted

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Any:
        context = getattr(self.request_conn, "context", None)
        if context is not None:
            context.remote_ip = self.trusted.client(self.connection_ip, headers.get_list("X-Forwarded-For"))
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


async def _read_proxy_header(stream: tornado.iostream.IOStream) -> proxy_protocol.ProxyHeader | None:
    """The PROXY header at the start of ``stream``, consumed; None (nothing consumed) if
    the connection starts with something else (HTTP)."""
    kind = await _peek_kind(stream)
    try:
        if kind == "v2":
            preamble = await stream.read_bytes(proxy_protocol.V2_PREAMBLE_BYTES)
            length = proxy_protocol.v2_body_length(preamble)
            body = await stream.read_bytes(length) if length else b""
            return proxy_protocol.parse_v2(preamble, body)
        if kind == "v1":
            line = await stream.read_until(b"\r\n", max_bytes=proxy_protocol.V1_MAX_BYTES)
            return proxy_protocol.parse_v1(line)
    except proxy_protocol.ProxyHeaderError as exc:
        raise _BadHeader(str(exc)) from None
    except tornado.iostream.UnsatisfiableReadError:
        raise _BadHeader(f"PROXY v1 line is over {proxy_protocol.V1_MAX_BYTES} bytes") from None
    return None


async def _peek_kind(stream: tornado.iostream.IOStream) -> str:
    """``"v1"``, ``"v2"`` or ``"http"``, from bytes peeked at (left in the socket)."""
    sock = stream.socket
    if sock is None:
        raise tornado.iostream.StreamClosedError()
    while True:
        await _readable(sock)
        try:
            prefix = sock.recv(len(proxy_protocol.V2_SIGNATURE), socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not prefix:
            raise tornado.iostream.StreamClosedError()
        kind = proxy_protocol.classify(prefix)
        if kind is not None:
            return kind
        await asyncio.sleep(_UNDECIDED_POLL)


async def _readable(sock: socket.socket) -> None:
    """Wait until ``sock`` has bytes (or an end) to read. Through Tornado's IOLoop, which
    the stream itself uses once it is handed over (the handler is gone by then)."""
    io_loop = tornado.ioloop.IOLoop.current()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(fd: Any, events: int) -> None:
        if not ready.done():
            ready.set_result(None)

    io_loop.add_handler(sock, on_event, tornado.ioloop.IOLoop.READ)
    try:
        await ready
    finally:
        io_loop.remove_handler(sock)
