"""A scripted RFB server on one end of a socket pair, for the gateway's VM-side handshake.

Unlike the simulator's screen it can be told to misbehave (old versions, other security
types, refusals, garbage) and it records what the client sent.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field

PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


@dataclass
class Script:
    version: bytes = b"RFB 003.008\n"
    security: bytes = b"\x01"  # types offered (3.7/3.8); 3.3: the first is the one named
    result: int = 0  # 3.8 SecurityResult
    reason: bytes = b""  # sent after a refusal
    name: bytes = b"scripted"
    name_length: int | None = None  # to lie about it
    width: int = 16
    height: int = 8
    hang_up_with: bytes | None = None  # after ServerInit: send these bytes, then close
    # recorded
    client_version: bytes = b""
    client_security: int | None = None
    shared: int | None = None
    received: bytearray = field(default_factory=bytearray)


async def serve(sock: socket.socket, script: Script) -> None:
    """Run ``script`` on ``sock``, then read whatever the client sends until it closes."""
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(script.version)
        script.client_version = await reader.readexactly(12)
        minor = int(script.client_version[8:11])
        if minor == 3:
            writer.write(struct.pack(">I", script.security[0]))
            if script.security[0] == 0:
                writer.write(struct.pack(">I", len(script.reason)) + script.reason)
                return
        else:
            writer.write(bytes([len(script.security)]) + script.security)
            if not script.security:
                writer.write(struct.pack(">I", len(script.reason)) + script.reason)
                return
            (script.client_security,) = await reader.readexactly(1)
            if minor == 8:
                writer.write(struct.pack(">I", script.result))
                if script.result:
                    writer.write(struct.pack(">I", len(script.reason)) + script.reason)
                    return
        (script.shared,) = await reader.readexactly(1)
        length = len(script.name) if script.name_length is None else script.name_length
        writer.write(struct.pack(">HH16sI", script.width, script.height, PIXEL_FORMAT, length) + script.name)
        await writer.drain()
        if script.hang_up_with is not None:
            writer.write(script.hang_up_with)
            await writer.drain()
            return
        while data := await reader.read(65536):
            script.received += data
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
