"""The PROXY protocol header a balancer sends before the client's bytes (HAProxy's
``send-proxy-v2``, or ``send-proxy`` for the v1 text form), parsed without trusting it.

Spec: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt. Only what the spec
defines is accepted; anything else raises ``ProxyHeaderError`` with a fixed message
(never quoting the bytes). Sizes are bounded before anything is read: v1 is one line of
at most 107 bytes, v2 a 16-byte preamble whose length field is checked against
``MAX_V2_BODY`` before the body is read.

A header whose command is LOCAL (HAProxy's own health checks), or whose addresses are
not TCP over IPv4/IPv6 (UNIX sockets, UNSPEC, UDP), names no client: ``source`` is None
and the connection keeps the balancer's address, as the spec asks.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "V1_PREFIX",
    "V1_MAX_BYTES",
    "V2_SIGNATURE",
    "V2_PREAMBLE_BYTES",
    "MAX_V2_BODY",
    "ProxyHeaderError",
    "ProxyHeader",
    "classify",
    "v2_body_length",
    "parse_v2",
    "parse_v1",
]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PREAMBLE_BYTES = 16  # signature, version/command, family/protocol, length
V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # the spec's worst case, "\r\n" included
# Addresses take at most 216 bytes (two UNIX paths); the rest is TLVs (HAProxy's
# unique-id, ALPN, SSL details). 1 KiB leaves room for those without letting a peer
# make the node buffer 64 KiB before a single HTTP byte.
MAX_V2_BODY = 1024

_V2_ADDRESS_BYTES = {0x1: 12, 0x2: 36, 0x3: 216}  # INET, INET6, UNIX
_STREAM = 0x1


class ProxyHeaderError(ValueError):
    """A malformed or unsupported PROXY header: the connection is closed."""


@dataclass(frozen=True)
class ProxyHeader:
    # The client's address and port, or None when the header names none (LOCAL, UNIX...).
    source: tuple[str, int] | None


def classify(prefix: bytes) -> str | None:
    """What a connection's first bytes start: ``"v2"``, ``"v1"``, ``"http"`` (no PROXY
    header), or None while ``prefix`` is too short to tell."""
    for name, signature in (("v2", V2_SIGNATURE), ("v1", V1_PREFIX)):
        if prefix.startswith(signature):
            return name
        if signature.startswith(prefix):
            return None  # could still become this header
    return "http"


def v2_body_length(preamble: bytes) -> int:
    """The length of the v2 header's body, from its 16-byte preamble (checked)."""
    if len(preamble) != V2_PREAMBLE_BYTES or not preamble.startswith(V2_SIGNATURE):
        raise ProxyHeaderError("not a PROXY v2 header")
    version_command = preamble[12]
    if version_command >> 4 != 0x2:
        raise ProxyHeaderError("PROXY header version is not 2")
    if version_command & 0x0F not in (0x0, 0x1):
        raise ProxyHeaderError("PROXY v2 command is neither LOCAL nor PROXY")
    (length,) = struct.unpack("!H", preamble[14:16])
    if length > MAX_V2_BODY:
        raise ProxyHeaderError(f"PROXY v2 header is over {MAX_V2_BODY} bytes")
    return int(length)


def parse_v2(preamble: bytes, body: bytes) -> ProxyHeader:
    """The client named by a v2 header (``preamble`` as checked by ``v2_body_length``)."""
    if v2_body_length(preamble) != len(body):
        raise ProxyHeaderError("PROXY v2 header is truncated")
    if preamble[12] & 0x0F == 0x0:
        return ProxyHeader(None)  # LOCAL: the balancer speaking for itself (health check)
    family, transport = preamble[13] >> 4, preamble[13] & 0x0F
    needed = _V2_ADDRESS_BYTES.get(family)
    if needed is not None and len(body) < needed:
        raise ProxyHeaderError("PROXY v2 addresses are shorter than their family needs")
    if transport != _STREAM or family not in (0x1, 0x2):
        return ProxyHeader(None)  # UNSPEC, UNIX or datagrams: no TCP client to name
    if family == 0x1:
        source = str(ipaddress.IPv4Address(body[0:4]))
        (port,) = struct.unpack("!H", body[8:10])
    else:
        source = str(ipaddress.IPv6Address(body[0:16]))
        (port,) = struct.unpack("!H", body[32:34])
    return ProxyHeader((source, int(port)))


def parse_v1(line: bytes) -> ProxyHeader:
    """The client named by a v1 line (``PROXY TCP4 SRC DST SPORT DPORT\\r\\n``)."""
    if len(line) > V1_MAX_BYTES or not line.startswith(V1_PREFIX) or not line.endswith(b"\r\n"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    parts = line[len(V1_PREFIX) : -2].split(b" ")
    if parts[0] == b"UNKNOWN":
        return ProxyHeader(None)  # the rest of the line is to be ignored
    if len(parts) != 5 or parts[0] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    kind = ipaddress.IPv4Address if parts[0] == b"TCP4" else ipaddress.IPv6Address
    try:
        source = kind(parts[1].decode("ascii"))
        kind(parts[2].decode("ascii"))
        ports = [_port(p) for p in parts[3:5]]
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError("malformed PROXY v1 addresses") from None
    return ProxyHeader((str(source), ports[0]))


def _port(text: bytes) -> int:
    # The spec: decimal, no leading zero, 0-65535.
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text.startswith(b"0")) or int(text) > 65535:
        raise ValueError("bad port")
    return int(text)
