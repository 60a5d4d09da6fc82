"""WebSocket framing, and every use of Tornado's private WebSocket API, in one place.

Two jobs, both below Tornado's public API (``tests/vmws/test_framing.py`` checks each
private name and signature used here, so a Tornado upgrade that changes them fails
loudly rather than quietly):

**Sending.** A broadcast hands one ``str`` to every peer: ``text_frame`` encodes and
frames it once, and ``write_frame`` writes the pieces straight to the connection's
``stream`` (Tornado's ``WebSocketProtocol.stream``), not through ``write_message``,
which encodes and frames per peer and wraps every write in a task (py-spy, 1,000
watchers: 65% of the server in ``write_message``, 21% of it in ``ensure_future``).

**Receiving, stricter.** Tornado echoes whatever close code a peer sends, including
codes RFC 6455 §7.4 forbids on the wire (0, 999, 1004–1006, 1015, 1016–2999) and
one-byte close payloads, and it does not check that the close reason is UTF-8. The
Autobahn cases 7.3.2, 7.5.1 and 7.9.x expect the endpoint to fail such a connection
with 1002 (protocol error) or 1007 (invalid payload). ``StrictWebSocketProtocol``
checks the close frame first (in ``_handle_message``, Tornado's private hook) and
otherwise leaves everything to Tornado; it is built with Tornado's private
``_WebSocketParams`` (``strict_protocol``).

Tornado also drops the TCP connection without a close frame on a text message that is
not UTF-8 (RFC 6455 §8.1 asks for 1007), and accepts unmasked client frames, which
§5.1 says a server must fail (1002). Both now get their close frame. Whether a frame
was masked is read from ``_frame_mask``, which Tornado sets only for masked frames
(``_receive_frame`` resets it per frame).
"""

from __future__ import annotations

import struct
from typing import Any

import tornado.iostream
from tornado.concurrent import Future
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13, _WebSocketParams

from vmws.codes import CloseCode

__all__ = ["StrictWebSocketProtocol", "strict_protocol", "text_frame", "write_frame", "valid_close_code"]

# The IANA registry's codes a peer may put on the wire (RFC 6455 §7.4.1): a registry,
# not codes vmws sends (those are CloseCode), so they are numbers here.
_REGISTERED_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def valid_close_code(code: int) -> bool:
    """Codes a peer may send (RFC 6455 §7.4.1, IANA registry; 3000–4999 for applications)."""
    return code in _REGISTERED_SENDABLE or 3000 <= code <= 4999


class StrictWebSocketProtocol(WebSocketProtocol13):
    async def _receive_frame(self) -> None:
        self._frame_mask = None  # Tornado sets it again if this frame is masked
        await super()._receive_frame()
        # A fragment that does not end its message is buffered without _handle_message.
        if self._frame_mask is None and not self.client_terminated and not self.is_closing():
            self._fail(CloseCode.PROTOCOL_ERROR, "client frames must be masked")

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.client_terminated:
            return None
        if self._frame_mask is None:
            self._fail(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
            return None
        problem = _close_frame_problem(data) if opcode == 0x8 else None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                problem = CloseCode.INVALID_DATA, "text message is not valid UTF-8"
        if problem is not None:
            self._fail(*problem)
            return None
        return super()._handle_message(opcode, data)

    def _fail(self, code: CloseCode, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): a close frame, then the TCP connection goes."""
        self.client_terminated = True
        self.close(code, reason)


def _close_frame_problem(data: bytes) -> tuple[CloseCode, str] | None:
    if len(data) == 1:
        return CloseCode.PROTOCOL_ERROR, "close frame payload of one byte"
    if len(data) >= 2:
        (code,) = struct.unpack(">H", data[:2])
        if not valid_close_code(code):
            return CloseCode.PROTOCOL_ERROR, f"invalid close code {code}"
        try:
            data[2:].decode("utf-8")
        except UnicodeDecodeError:
            return CloseCode.INVALID_DATA, "close reason is not valid UTF-8"
    return None


def strict_protocol(handler: WebSocketHandler) -> StrictWebSocketProtocol:
    """The protocol object for ``handler``'s accepted upgrade (what Tornado's own
    ``get_websocket_protocol`` builds, with ``StrictWebSocketProtocol`` instead)."""
    params = _WebSocketParams(
        ping_interval=handler.ping_interval,
        ping_timeout=handler.ping_timeout,
        max_message_size=handler.max_message_size,
        compression_options=None,  # console output is already dense; compression costs CPU per viewer
    )
    return StrictWebSocketProtocol(handler, False, params)


# The last text framed and its frame: a broadcast hands one str to every peer in
# turn, so it is encoded and framed once. The event loop is single-threaded.
_last_frame: tuple[str, tuple[bytes, ...]] | None = None
# Frames at least this large are written as header and payload: joining them copies
# the payload once more (14% of a console flood's CPU, py-spy), and Tornado keeps
# large writes by reference.
_SPLIT_FRAME = 16 * 1024


def text_frame(text: str) -> tuple[bytes, ...]:
    """An unmasked, uncompressed WebSocket text frame (a server's) carrying ``text``,
    as the pieces to write in order."""
    global _last_frame
    if _last_frame is not None and _last_frame[0] is text:
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


def write_frame(connection: WebSocketProtocol, pieces: tuple[bytes, ...]) -> Future[None] | None:
    """Write a frame's ``pieces`` to ``connection``'s stream, in order; the future of the
    last write, or None when the connection is closing or its stream is gone."""
    stream = connection.stream
    if connection.is_closing() or stream is None:
        return None
    future: Future[None] | None = None
    try:
        for piece in pieces:
            future = stream.write(piece)
    except tornado.iostream.StreamClosedError:
        return None
    return future
