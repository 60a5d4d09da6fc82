"""The browser's side of a screen, parsed: bytes in, (answer to the browser, bytes to the VM) out.

The gateway authenticates the browser itself (token or ticket), so it answers the RFB
handshake on its own: it sent ``RFB 003.008\\n``, accepts a 3.3, 3.7 or 3.8 reply,
offers only security None (3.8: SecurityResult OK), reads ClientInit (its shared flag
is ignored: the VM connection is always shared) and answers with the VM's ServerInit.

After that every client message is parsed from its fixed size or its length field, so
the relay knows where each ends: a length over its bound (ClientCutText, SetEncodings,
a fence's payload) or an unknown type is an ``RFBViolation`` at once, before anything
is buffered, and the buffer never holds more than one message. A view-only viewer's
input (keys, pointer, cut text, QEMU key events, desktop resizing, XVP power
operations) is dropped here. SetEncodings loses the ExtendedMouseButtons
pseudo-encoding (see ``rfb.ENCODING_EXTENDED_MOUSE_BUTTONS``).
"""

from __future__ import annotations

import enum
import struct

from vmws.screen.rfb import (
    ENCODING_EXTENDED_MOUSE_BUTTONS,
    QEMU_AUDIO,
    QEMU_EXTENDED_KEY_EVENT,
    VERSION_LENGTH,
    ClientMessageType,
    RFBViolation,
    SecurityType,
    parse_version,
    version_string,
)

__all__ = ["ViewerStream", "GREETING", "MAX_CUT_TEXT_BYTES", "MAX_ENCODINGS", "MAX_FENCE_PAYLOAD"]

# What the gateway sends a browser first.
GREETING = version_string(8)
# Bounds of the variable-length client messages. A paste of more than 256 KiB is no
# use to a VM without a clipboard agent; noVNC sends about 25 encodings; RFB's fence
# extension caps its payload at 64 bytes.
MAX_CUT_TEXT_BYTES = 256 * 1024
MAX_ENCODINGS = 256
MAX_FENCE_PAYLOAD = 64

_T = ClientMessageType
# Messages of one fixed size, type byte included.
_FIXED: dict[int, int] = {
    _T.SET_PIXEL_FORMAT: 20,
    _T.FRAMEBUFFER_UPDATE_REQUEST: 10,
    _T.KEY_EVENT: 8,
    _T.POINTER_EVENT: 6,
    _T.ENABLE_CONTINUOUS_UPDATES: 10,
    _T.XVP: 4,
}
# What a view-only viewer may not send: it would act on the VM.
_INPUT = frozenset({_T.KEY_EVENT, _T.POINTER_EVENT, _T.CLIENT_CUT_TEXT, _T.SET_DESKTOP_SIZE, _T.XVP})
_QEMU_AUDIO_SIZES = {0: 4, 1: 4, 2: 10}  # enable, disable, set format
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_S32 = struct.Struct(">i")
_ACCEPTED_VERSIONS = {(3, 3): 3, (3, 7): 7, (3, 8): 8}


class _State(enum.Enum):
    VERSION = "version"
    SECURITY = "security"
    CLIENT_INIT = "client init"
    MESSAGES = "messages"


class ViewerStream:
    """One browser's RFB byte stream, after the gateway sent ``GREETING``."""

    def __init__(self, server_init: bytes, *, view_only: bool) -> None:
        self._server_init = server_init
        self._view_only = view_only
        self._state = _State.VERSION
        self._minor = 8
        self._buffer = bytearray()
        self.dropped = 0  # input messages dropped because the viewer is view-only

    @property
    def relaying(self) -> bool:
        """The handshake is over: messages flow to the VM."""
        return self._state is _State.MESSAGES

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Take bytes from the browser; return (bytes to answer it, bytes for the VM).
        ``RFBViolation`` when the browser broke the protocol (the connection must end)."""
        self._buffer += data
        to_viewer = bytearray()
        to_vm = bytearray()
        while self._buffer:
            if self._state is _State.MESSAGES:
                size = self._message_size()
                if size is None or len(self._buffer) < size:
                    break
                message = bytes(self._buffer[:size])
                del self._buffer[:size]
                to_vm += self._filter(message)
            elif not self._handshake_step(to_viewer):
                break
        return bytes(to_viewer), bytes(to_vm)

    # The handshake (§7.1-7.3), answered by the gateway.

    def _handshake_step(self, answer: bytearray) -> bool:
        buffer = self._buffer
        if self._state is _State.VERSION:
            if len(buffer) < VERSION_LENGTH:
                return False
            version = parse_version(bytes(buffer[:VERSION_LENGTH]))
            if version not in _ACCEPTED_VERSIONS:
                raise RFBViolation(f"RFB version {version[0]}.{version[1]}: the gateway speaks 3.3, 3.7 and 3.8")
            del buffer[:VERSION_LENGTH]
            self._minor = _ACCEPTED_VERSIONS[version]
            if self._minor == 3:  # 3.3: the server names the type; None has no SecurityResult
                answer += _U32.pack(SecurityType.NONE)
                self._state = _State.CLIENT_INIT
            else:
                answer += bytes([1, SecurityType.NONE])
                self._state = _State.SECURITY
        elif self._state is _State.SECURITY:
            chosen = buffer[0]
            del buffer[:1]
            if chosen != SecurityType.NONE:
                raise RFBViolation(f"security type {chosen} was not offered (only None, 1)")
            if self._minor == 8:
                answer += _U32.pack(0)  # SecurityResult OK
            self._state = _State.CLIENT_INIT
        else:  # ClientInit: the shared flag is ignored, the VM connection is always shared
            del buffer[:1]
            answer += self._server_init
            self._state = _State.MESSAGES
        return True

    # Client messages (§7.5 and extensions)

    def _message_size(self) -> int | None:
        """Total size of the message at the buffer's start; None until its header is in."""
        buffer = self._buffer
        kind = buffer[0]
        fixed = _FIXED.get(kind)
        if fixed is not None:
            return fixed
        if kind == _T.SET_ENCODINGS:
            if len(buffer) < 4:
                return None
            count: int = _U16.unpack_from(buffer, 2)[0]
            if count > MAX_ENCODINGS:
                raise RFBViolation(f"SetEncodings with {count} encodings (at most {MAX_ENCODINGS})")
            return 4 + 4 * count
        if kind == _T.CLIENT_CUT_TEXT:
            if len(buffer) < 8:
                return None
            # Negative: the extended clipboard's form, of the absolute length.
            length: int = abs(_S32.unpack_from(buffer, 4)[0])
            if length > MAX_CUT_TEXT_BYTES:
                raise RFBViolation(f"ClientCutText of {length} bytes (at most {MAX_CUT_TEXT_BYTES})")
            return 8 + length
        if kind == _T.CLIENT_FENCE:
            if len(buffer) < 9:
                return None
            if buffer[8] > MAX_FENCE_PAYLOAD:
                raise RFBViolation(f"ClientFence payload of {buffer[8]} bytes (at most {MAX_FENCE_PAYLOAD})")
            return 9 + buffer[8]
        if kind == _T.SET_DESKTOP_SIZE:
            return None if len(buffer) < 8 else 8 + 16 * buffer[6]
        if kind == _T.QEMU:
            return self._qemu_message_size()
        raise RFBViolation(f"unknown RFB client message type {kind}")

    def _qemu_message_size(self) -> int | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        if buffer[1] == QEMU_EXTENDED_KEY_EVENT:
            return 12
        if buffer[1] == QEMU_AUDIO:
            if len(buffer) < 4:
                return None
            operation: int = _U16.unpack_from(buffer, 2)[0]
            if operation not in _QEMU_AUDIO_SIZES:
                raise RFBViolation(f"unknown QEMU audio operation {operation}")
            return _QEMU_AUDIO_SIZES[operation]
        raise RFBViolation(f"unknown QEMU client message sub-type {buffer[1]}")

    def _filter(self, message: bytes) -> bytes:
        """What of one whole message goes on to the VM."""
        kind = message[0]
        is_input = kind in _INPUT or (kind == _T.QEMU and message[1] == QEMU_EXTENDED_KEY_EVENT)
        if self._view_only and is_input:
            self.dropped += 1
            return b""
        if kind == _T.SET_ENCODINGS:
            encodings = struct.unpack_from(f">{(len(message) - 4) // 4}i", message, 4)
            kept = [e for e in encodings if e != ENCODING_EXTENDED_MOUSE_BUTTONS]
            if len(kept) != len(encodings):
                return struct.pack(f">BxH{len(kept)}i", _T.SET_ENCODINGS, len(kept), *kept)
        return message
