"""Tornado's RFC 6455 implementation, stricter about close frames, masking and UTF-8.

Tornado echoes whatever close code a peer sends, including codes RFC 6455 §7.4 forbids
on the wire (0, 999, 1004–1006, 1015, 1016–2999) and one-byte close payloads, and it
does not check that the close reason is UTF-8. The Autobahn cases 7.3.2, 7.5.1 and
7.9.x expect the endpoint to fail such a connection with 1002 (protocol error) or
1007 (invalid payload). This subclass checks the close frame first and otherwise
leaves everything to Tornado (``_handle_message`` is Tornado's private hook; the
Autobahn test in tests/e2e/test_autobahn.py guards it across upgrades).

Tornado also drops the TCP connection without a close frame on a text message that is
not UTF-8 (RFC 6455 §8.1 asks for 1007), and accepts unmasked client frames, which
§5.1 says a server must fail (1002). Both now get their close frame. Whether a frame
was masked is read from ``_frame_mask``, which Tornado sets only for masked frames.
"""

from __future__ import annotations

import struct
from typing import Any

from tornado.websocket import WebSocketProtocol13

from vmws.codes import CloseCode

__all__ = ["StrictWebSocketProtocol", "valid_close_code"]

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
