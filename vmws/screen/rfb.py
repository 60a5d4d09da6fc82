"""RFB (RFC 6143) wire facts the gateway needs on both of its sides.

Only what the relay parses is here: version strings, security types, the ServerInit
layout and the client message types (with the extensions noVNC and QEMU use). Server
to client messages are relayed untouched and never parsed.
"""

from __future__ import annotations

import enum
import re
import struct

__all__ = [
    "RFBViolation",
    "VERSION_LENGTH",
    "version_string",
    "parse_version",
    "answer_version",
    "SecurityType",
    "ClientMessageType",
    "QEMU_EXTENDED_KEY_EVENT",
    "QEMU_AUDIO",
    "ENCODING_EXTENDED_MOUSE_BUTTONS",
    "SERVER_INIT_HEADER",
    "MAX_DESKTOP_NAME_BYTES",
]

VERSION_LENGTH = 12
# "RFB xxx.yyy\n" (§7.1.1): three digits each.
_VERSION = re.compile(rb"RFB ([0-9]{3})\.([0-9]{3})\n")

# ServerInit (§7.3.2): width, height (u16 each), the 16-byte pixel format, name length.
SERVER_INIT_HEADER = struct.Struct(">HH16sI")
# Longer desktop names are refused: QEMU's is the domain name, far shorter.
MAX_DESKTOP_NAME_BYTES = 4096

# The pseudo-encoding after which noVNC sends 7-byte PointerEvents (a marker bit in
# the button mask): the gateway strips it from SetEncodings, so the VM's server never
# acknowledges it and every PointerEvent stays the 6 bytes RFC 6143 gives it.
ENCODING_EXTENDED_MOUSE_BUTTONS = -316

# Sub-types of QEMU's client message 255.
QEMU_EXTENDED_KEY_EVENT = 0
QEMU_AUDIO = 1


class RFBViolation(Exception):
    """A peer broke the protocol; the message says how (short: it becomes a close reason)."""


class SecurityType(enum.IntEnum):
    INVALID = 0  # 3.3: the server refuses, a reason follows
    NONE = 1
    VNC_AUTH = 2


class ClientMessageType(enum.IntEnum):
    """Client to server messages (§7.5 and the registered extensions noVNC sends)."""

    SET_PIXEL_FORMAT = 0
    SET_ENCODINGS = 2
    FRAMEBUFFER_UPDATE_REQUEST = 3
    KEY_EVENT = 4
    POINTER_EVENT = 5
    CLIENT_CUT_TEXT = 6
    ENABLE_CONTINUOUS_UPDATES = 150
    CLIENT_FENCE = 248
    XVP = 250
    SET_DESKTOP_SIZE = 251
    QEMU = 255


def version_string(minor: int) -> bytes:
    """The 12-byte ProtocolVersion of RFB 3.``minor``."""
    return b"RFB 003.%03d\n" % minor


def parse_version(raw: bytes) -> tuple[int, int]:
    """(major, minor) of a ProtocolVersion message; ``RFBViolation`` if it is none."""
    match = _VERSION.fullmatch(raw)
    if match is None:
        raise RFBViolation("not an RFB protocol version string")
    return int(match[1]), int(match[2])


def answer_version(offered: tuple[int, int]) -> int:
    """The minor version (3, 7 or 8) a 3.8 client answers a server offering ``offered``.

    §7.1.1: a server offering a later version than 3.8 gets 3.8; versions between the
    three published ones count as 3.3 (3.5 was never published); an earlier major
    version is no RFB this gateway speaks.
    """
    if offered < (3, 3):
        raise RFBViolation(f"RFB version {offered[0]}.{offered[1]} is older than 3.3")
    if offered >= (3, 8):
        return 8
    return 7 if offered == (3, 7) else 3
