"""A lean asyncio WebSocket client for benchmarks: many connections, little CPU each.

Third-party clients spend more CPU per message than the server under test does, so on
two cores they would measure themselves. This one is an ``asyncio.Protocol`` that
speaks just enough RFC 6455 for loopback benchmarks: the upgrade, unfragmented
frames, pings answered, closes recorded. Messages are handed to a callback as bytes
with the time they arrived, undecoded, so counting bytes costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Connection", "connect", "connect_many", "OP_TEXT", "OP_BINARY", "OP_CLOSE"]

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA

MessageHandler = Callable[["Connection", bytes, float], None]


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n == 0:
        return key
    # XOR as one big integer: fast in C for the small frames a client sends
    keystream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
    return key + masked


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _mask(payload)


class Connection(asyncio.Protocol):
    """One client connection. ``on_message(conn, payload, arrived)`` gets every text frame."""

    def __init__(self, host: str, path: str, on_message: MessageHandler | None, subprotocol: str | None = None) -> None:
        offered = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{offered}\r\n"
        ).encode()
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.messages = 0
        self.bytes_received = 0
        self.pings = 0
        self.user: object = None  # whatever the benchmark keeps per connection
        self._buf = bytearray()
        self._upgraded = False
        # payload bytes of a data frame still to come that nobody reads (counted, not kept)
        self._skip = 0

    # asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        rest: bytes | memoryview = data
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            self.bytes_received += taken
            if taken == len(data):
                return
            rest = memoryview(data)[taken:]
        buf = self._buf
        buf += rest
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[: end + 4]
            if b" 101 " not in status + b" ":
                self._fail(ConnectionError(f"upgrade refused: {status.decode(errors='replace')}"))
                return
            self._upgraded = True
            self.opened.set_result(None)
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            opcode = b0 & 0x0F
            if self.on_message is None and opcode in (OP_TEXT, 0x2) and size - pos < head + n:
                # a large frame nobody reads: count it as it streams in, keep none of it
                self.messages += 1
                self.bytes_received += size - pos - head
                self._skip = head + n - (size - pos)
                pos = size
                break
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            if opcode == OP_TEXT or opcode == 0x2:
                self.messages += 1
                self.bytes_received += n
                if self.on_message is not None:
                    self.on_message(self, payload, arrived)
            elif opcode == _OP_PING:
                self.pings += 1
                self._write(_OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
                self._write(OP_CLOSE, payload[:2])
                if self.transport:
                    self.transport.close()
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    # Public methods

    def send_text(self, text: str | bytes) -> None:
        self._write(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, payload: bytes) -> None:
        self._write(OP_BINARY, payload)

    def close(self, code: int = 1000) -> None:
        if self.transport and not self.transport.is_closing():
            self._write(OP_CLOSE, struct.pack("!H", code))
            self.transport.close()

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.closed.done()

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport:
            self.transport.close()


async def connect(
    url: str, on_message: MessageHandler | None = None, timeout: float = 30.0, *, subprotocol: str | None = None
) -> Connection:
    """Open one connection to ``ws://127.0.0.1:PORT/path`` (offering ``subprotocol``) and wait for the upgrade."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: Connection(f"{host}:{port}", path, on_message, subprotocol), host, port),
        timeout,
    )
    await asyncio.wait_for(asyncio.shield(conn.opened), timeout)
    return conn


async def connect_many(
    urls: list[str],
    on_message: MessageHandler | None = None,
    *,
    concurrency: int = 64,
    timeout: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> list[Connection]:
    """Open one connection per URL, at most ``concurrency`` handshakes at a time (a
    listen backlog of 128 drops SYNs past that, costing a second each)."""
    results: list[Connection | None] = [None] * len(urls)
    next_index = 0
    done = 0

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < len(urls):
            i = next_index
            next_index += 1
            results[i] = await connect(urls[i], on_message)
            done += 1
            if progress and done % 1000 == 0:
                progress(done)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(min(concurrency, len(urls))))), timeout)
    return [c for c in results if c is not None]
