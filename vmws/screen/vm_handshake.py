"""The gateway as an RFB client of the VM's server: version, security None, shared.

The VM's server is QEMU's (opened by libvirt with SKIPAUTH, so it offers None) or the
simulator's. The gateway always sends ClientInit shared=1, whatever the browser asks:
several viewers share one screen and none may disconnect the others (§7.3.1).
VNC authentication (type 2) is not answered: a server offering only that is refused
with ``NoScreen``, as is one that breaks the handshake or takes longer than
``HANDSHAKE_TIMEOUT``. Text the server sends (a refusal's reason) is hostile: only
printable ASCII of it, cut short, reaches a message.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from vmws.errors import NoScreen
from vmws.screen.rfb import (
    MAX_DESKTOP_NAME_BYTES,
    SERVER_INIT_HEADER,
    VERSION_LENGTH,
    RFBViolation,
    SecurityType,
    answer_version,
    parse_version,
    version_string,
)

__all__ = ["ServerInit", "handshake_with_vm", "HANDSHAKE_TIMEOUT"]

# Seconds the VM's server gets to complete its side of the handshake.
HANDSHAKE_TIMEOUT = 10.0
# Of a refusal reason the server sends: read at most this much, quote at most 80 characters.
_MAX_REASON_BYTES = 4096
_QUOTED_REASON = 80
_SHARED = b"\x01"


@dataclass(frozen=True, slots=True)
class ServerInit:
    """The VM server's ServerInit (§7.3.2), forwarded to every browser as it came."""

    width: int
    height: int
    pixel_format: bytes
    name: bytes

    def encode(self) -> bytes:
        return SERVER_INIT_HEADER.pack(self.width, self.height, self.pixel_format, len(self.name)) + self.name


async def handshake_with_vm(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> ServerInit:
    """Run the client side of the handshake; ``NoScreen`` when it cannot be completed."""
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            return await _handshake(reader, writer)
    except TimeoutError:
        raise NoScreen(
            f"the VM's screen server did not complete the RFB handshake within {HANDSHAKE_TIMEOUT:g} s"
        ) from None
    except (asyncio.IncompleteReadError, ConnectionError):
        raise NoScreen("the VM's screen server closed the connection during the RFB handshake") from None
    except RFBViolation as exc:
        raise NoScreen(f"the VM's screen server broke the RFB handshake: {exc}") from None


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> ServerInit:
    minor = answer_version(parse_version(await reader.readexactly(VERSION_LENGTH)))
    writer.write(version_string(minor))
    if minor == 3:
        # 3.3: the server decides the security type; None has no SecurityResult.
        (chosen,) = struct.unpack(">I", await reader.readexactly(4))
        if chosen == SecurityType.INVALID:
            raise NoScreen(f"the VM's screen server refused the connection: {await _reason(reader)}")
        if chosen != SecurityType.NONE:
            raise NoScreen(f"the VM's screen server requires RFB security type {chosen}; vmws answers only None")
    else:
        (count,) = await reader.readexactly(1)
        if count == 0:
            raise NoScreen(f"the VM's screen server refused the connection: {await _reason(reader)}")
        offered = await reader.readexactly(count)
        if SecurityType.NONE not in offered:
            types = ", ".join(str(t) for t in offered[:16])
            raise NoScreen(f"the VM's screen server offers RFB security types {types}; vmws answers only None (1)")
        writer.write(bytes([SecurityType.NONE]))
        if minor == 8:  # 3.7 sends no SecurityResult after None, 3.8 always does
            (result,) = struct.unpack(">I", await reader.readexactly(4))
            if result != 0:
                raise NoScreen(f"the VM's screen server failed the security handshake: {await _reason(reader)}")
    writer.write(_SHARED)
    await writer.drain()
    width, height, pixel_format, name_length = SERVER_INIT_HEADER.unpack(
        await reader.readexactly(SERVER_INIT_HEADER.size)
    )
    if name_length > MAX_DESKTOP_NAME_BYTES:
        raise RFBViolation(f"a desktop name of {name_length} bytes (at most {MAX_DESKTOP_NAME_BYTES})")
    return ServerInit(width, height, pixel_format, await reader.readexactly(name_length))


async def _reason(reader: asyncio.StreamReader) -> str:
    """A failure reason (§7.1.2), as printable ASCII cut short; the rest is not read."""
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    raw = await reader.readexactly(min(length, _MAX_REASON_BYTES))
    text = "".join(c if " " <= c <= "~" else "?" for c in raw.decode("ascii", "replace"))
    return repr(text[:_QUOTED_REASON]) if text else "no reason given"
