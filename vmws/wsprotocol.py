"""Tornado's RFC 6455 implementation, stricter about close frames.

Tornado echoes whatever close code a peer sends, including codes RFC 6455 §7.4 forbids
on the wire (0, 999, 1004–1006, 1015, 1016–2999) and one-byte close payloads, and it
does not check that the close reason is UTF-8. The Autobahn cases 7.3.2, 7.5.1 and
7.9.x expect the endpoint to fail such a connection with 1002 (protocol error) or
1007 (invalid payload). This subclass checks the close frame first and otherwise
leaves everything to Tornado (``_handle_message`` is Tornado's private hook; the
Autobahn test in tests/e2e/test_autobahn.py guards it across upgrades).
"""

from __future__ import annotations

import struct
from typing import Any

from tornado.websocket import WebSocketProtocol13

__all__ = ["StrictWebSocketProtocol", "valid_close_code"]

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007


def valid_close_code(code: int) -> bool:
    """Codes a peer may send (RFC 6455 §7.4.1, IANA registry; 3000–4999 for applications)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


class StrictWebSocketProtocol(WebSocketProtocol13):
    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if opcode == 0x8 and not self.client_terminated:
            problem = _close_frame_problem(data)
            if problem is not None:
                self.client_terminated = True
                self.close(*problem)
                return None
        return super()._handle_message(opcode, data)


def _close_frame_problem(data: bytes) -> tuple[int, str] | None:
    if len(data) == 1:
        return CLOSE_PROTOCOL_ERROR, "close frame payload of one byte"
    if len(data) >= 2:
        (code,) = struct.unpack(">H", data[:2])
        if not valid_close_code(code):
            return CLOSE_PROTOCOL_ERROR, f"invalid close code {code}"
        try:
            data[2:].decode("utf-8")
        except UnicodeDecodeError:
            return CLOSE_INVALID_PAYLOAD, "close reason is not valid UTF-8"
    return None
