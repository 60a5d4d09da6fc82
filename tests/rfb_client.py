"""A small asyncio RFB (RFC 6143) client for tests.

It speaks version 3.8 with security type None, asks for a shared session, sets a
32-bit true-colour pixel format (red in the low byte, as noVNC does) and keeps the
framebuffer in a ``bytearray`` updated from Raw, CopyRect and DesktopSize rectangles.
It runs over a plain stream socket (a VNC server, or the socket a backend's
``open_screen`` returns) or over a binary WebSocket (the gateway's
``/ws/vms/{name}/screen``), through the ``Transport`` seam.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection

VERSION_38 = b"RFB 003.008\n"
SECURITY_NONE = 1

ENCODING_RAW = 0
ENCODING_COPYRECT = 1
ENCODING_DESKTOP_SIZE = -223

KEY_RETURN = 0xFF0D
KEY_BACKSPACE = 0xFF08
KEY_CONTROL_L = 0xFFE3
KEY_ALT_L = 0xFFE9
KEY_DELETE = 0xFFFF

BYTES_PER_PIXEL = 4
# bits-per-pixel 32, depth 24, little endian, true colour, max 255 each, shifts r0 g8 b16
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 0, 8, 16)


class RFBError(Exception):
    """The server refused us or broke the protocol."""


class Transport(Protocol):
    async def read_exactly(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StreamTransport:
    """RFB over a connected stream socket or an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def over_socket(cls, sock: socket.socket) -> StreamTransport:
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        return cls(reader, writer)

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            raise EOFError(f"stream ended after {len(exc.partial)} of {n} bytes") from exc

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()


class WebSocketTransport:
    """RFB over binary WebSocket messages (message boundaries mean nothing in RFB)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._buffer = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            message = await self.ws.recv()
            if isinstance(message, str):
                raise RFBError(f"text frame on a binary screen socket: {message[:80]!r}")
            self._buffer += message
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def write(self, data: bytes) -> None:
        await self.ws.send(data)

    async def close(self) -> None:
        await self.ws.close()


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int
    encoding: int


class RFBClient:
    """One RFB session: ``await RFBClient.connect(transport)``, then updates and events."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.server_version = b""
        self.width = 0
        self.height = 0
        self.name = ""
        self.framebuffer = bytearray()
        self.bells = 0
        self.cut_text: list[bytes] = []

    @classmethod
    async def connect(cls, transport: Transport, *, shared: bool = True) -> RFBClient:
        client = cls(transport)
        await client._handshake(shared)
        return client

    async def _handshake(self, shared: bool) -> None:
        t = self.transport
        self.server_version = await t.read_exactly(12)
        if not self.server_version.startswith(b"RFB "):
            raise RFBError(f"not an RFB server: {self.server_version!r}")
        await t.write(VERSION_38)
        (count,) = await t.read_exactly(1)
        if count == 0:
            raise RFBError(f"server refused: {await self._read_reason()!r}")
        types = await t.read_exactly(count)
        if SECURITY_NONE not in types:
            raise RFBError(f"security type None not offered: {list(types)}")
        await t.write(bytes([SECURITY_NONE]))
        (result,) = struct.unpack(">I", await t.read_exactly(4))
        if result != 0:
            raise RFBError(f"security failed: {await self._read_reason()!r}")
        await t.write(bytes([1 if shared else 0]))
        self.width, self.height = struct.unpack(">HH", await t.read_exactly(4))
        await t.read_exactly(16)  # the server's pixel format: we set our own below
        (name_length,) = struct.unpack(">I", await t.read_exactly(4))
        self.name = (await t.read_exactly(name_length)).decode("utf-8", "replace")
        self.framebuffer = bytearray(self.width * self.height * BYTES_PER_PIXEL)
        await t.write(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        encodings = (ENCODING_RAW, ENCODING_COPYRECT, ENCODING_DESKTOP_SIZE)
        await t.write(struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))

    async def _read_reason(self) -> bytes:
        (length,) = struct.unpack(">I", await self.transport.read_exactly(4))
        return await self.transport.read_exactly(min(length, 4096))

    async def request_update(self, *, incremental: bool = True) -> None:
        await self.transport.write(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height))

    async def read_update(self) -> list[Rect]:
        """Read server messages until a framebuffer update arrives; return its rectangles."""
        while True:
            (kind,) = await self.transport.read_exactly(1)
            if kind == 0:
                return await self._read_framebuffer_update()
            if kind == 1:  # SetColourMapEntries: only in colour-map mode, which we never ask for
                _, _, count = struct.unpack(">xHH", await self.transport.read_exactly(5))
                await self.transport.read_exactly(6 * count)
            elif kind == 2:
                self.bells += 1
            elif kind == 3:
                (length,) = struct.unpack(">3xI", await self.transport.read_exactly(7))
                self.cut_text.append(await self.transport.read_exactly(length))
            else:
                raise RFBError(f"unknown server message type {kind}")

    async def _read_framebuffer_update(self) -> list[Rect]:
        (count,) = struct.unpack(">xH", await self.transport.read_exactly(3))
        rects = []
        for _ in range(count):
            rect = Rect(*struct.unpack(">HHHHi", await self.transport.read_exactly(12)))
            if rect.encoding == ENCODING_RAW:
                self._put(rect, await self.transport.read_exactly(rect.width * rect.height * BYTES_PER_PIXEL))
            elif rect.encoding == ENCODING_COPYRECT:
                src_x, src_y = struct.unpack(">HH", await self.transport.read_exactly(4))
                self._copy(rect, src_x, src_y)
            elif rect.encoding == ENCODING_DESKTOP_SIZE:
                self.width, self.height = rect.width, rect.height
                self.framebuffer = bytearray(self.width * self.height * BYTES_PER_PIXEL)
            else:
                raise RFBError(f"encoding {rect.encoding} was not asked for")
            rects.append(rect)
        return rects

    def _put(self, rect: Rect, pixels: bytes) -> None:
        if rect.x + rect.width > self.width or rect.y + rect.height > self.height:
            raise RFBError(f"rectangle {rect} outside the {self.width}x{self.height} framebuffer")
        row = rect.width * BYTES_PER_PIXEL
        for line in range(rect.height):
            start = ((rect.y + line) * self.width + rect.x) * BYTES_PER_PIXEL
            self.framebuffer[start : start + row] = pixels[line * row : (line + 1) * row]

    def _copy(self, rect: Rect, src_x: int, src_y: int) -> None:
        source = bytes(self.framebuffer)  # overlapping copies read the old picture
        row = rect.width * BYTES_PER_PIXEL
        for line in range(rect.height):
            src = ((src_y + line) * self.width + src_x) * BYTES_PER_PIXEL
            dst = ((rect.y + line) * self.width + rect.x) * BYTES_PER_PIXEL
            self.framebuffer[dst : dst + row] = source[src : src + row]

    async def key(self, keysym: int, *, down: bool) -> None:
        await self.transport.write(struct.pack(">BBxxI", 4, int(down), keysym))

    async def press(self, keysym: int) -> None:
        await self.key(keysym, down=True)
        await self.key(keysym, down=False)

    async def type_text(self, text: str) -> None:
        """Type ``text`` as key presses; ``\\n`` is Return."""
        for char in text:
            await self.press(KEY_RETURN if char == "\n" else ord(char))

    async def ctrl_alt_del(self) -> None:
        for keysym in (KEY_CONTROL_L, KEY_ALT_L, KEY_DELETE):
            await self.key(keysym, down=True)
        for keysym in (KEY_DELETE, KEY_ALT_L, KEY_CONTROL_L):
            await self.key(keysym, down=False)

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        await self.transport.write(struct.pack(">BBHH", 5, buttons, x, y))

    def is_blank(self) -> bool:
        """True while every pixel has the colour of the first one."""
        first = bytes(self.framebuffer[:BYTES_PER_PIXEL])
        return self.framebuffer == first * (len(self.framebuffer) // BYTES_PER_PIXEL)

    async def close(self) -> None:
        await self.transport.close()
