"""The VM's RFB bytes on their way to the browser, with no copy in Python.

Once the browser's handshake is done, the VM socket's transport is handed to a
``VMPipe`` (``asyncio.BufferedProtocol``): the event loop reads the VM's bytes straight
into a buffer that keeps room before them for the WebSocket frame header, the header is
written in front, and the frame goes to the browser's stream as a view of that buffer
(Tornado keeps large writes by reference). A read of up to ``CHUNK`` bytes is one binary
frame. Before, each chunk went through a ``StreamReader`` and ``write_message``: four
copies of every byte (into the reader's buffer, out of it, into the frame, the loop's
own read) and a task per write, about half of the relay's CPU per 1 MB update (py-spy
and ``/proc`` CPU time, ``docs/performance.md``).

Backpressure, as before (nothing buffered without bound): when a frame could not be
written to the browser's socket at once, reading from the VM pauses until it has been,
so at most one chunk waits in the gateway per viewer and the rest waits in the VM's
socket. Writes to the VM (the browser's messages) go through ``write``, which returns
a future while the VM's socket is over its high-water mark; the handler returns it to
Tornado, which reads no further frame until it is done.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import cast

from tornado.concurrent import Future

__all__ = ["VMPipe", "CHUNK", "binary_frame_header"]

# The most read from the VM's server at once, and so the largest binary frame sent.
# 64 KiB, as websockify reads: a browser gets a frame only once all of it is in, and
# with 256 KiB frames the screen relay benchmark relayed fewer updates per second in
# every run (docs/performance.md).
CHUNK = 64 * 1024
# Room kept before each read for the frame header: 2 bytes and a 64-bit length at most.
_HEADROOM = 10

Send = Callable[[memoryview, int], "Future[None] | None"]


def binary_frame_header(size: int) -> bytes:
    """The header of an unmasked, final, uncompressed binary frame (a server's) of ``size`` bytes."""
    if size < 126:
        return struct.pack("!BB", 0x82, size)
    if size <= 0xFFFF:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


class VMPipe(asyncio.BufferedProtocol):
    """Relays a VM socket's transport to ``send`` (a whole frame and its payload's size;
    the future of its write, or None when the browser's side is closing). ``ended`` is
    called once, when the VM's side closes (None) or the relay failed (the exception)."""

    def __init__(self, transport: asyncio.Transport, send: Send, ended: Callable[[BaseException | None], None]) -> None:
        self._transport = transport
        self._send = send
        self._ended: Callable[[BaseException | None], None] | None = ended
        self._buffer: bytearray | None = None
        self._writable: asyncio.Future[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def take_over(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        send: Send,
        ended: Callable[[BaseException | None], None],
    ) -> VMPipe:
        """Move the connection ``reader`` and ``writer`` have been reading and writing (the
        VM handshake's) to a new pipe; whatever the reader had buffered is sent first."""
        # a socket's transport reads and writes (uvloop's does not subclass asyncio.Transport)
        transport = cast(asyncio.Transport, writer.transport)
        pipe = cls(transport, send, ended)
        pipe._writer = writer  # a StreamWriter that is collected closes its transport
        transport.set_protocol(pipe)
        reader.feed_eof()  # what it holds is all it will ever get: read it without waiting
        try:
            leftover = await reader.read()
        except ConnectionError as exc:
            pipe._end(exc)
            return pipe
        if leftover:
            pipe._forward(bytearray(_HEADROOM) + leftover, len(leftover))
        if transport.is_closing():
            pipe._end(None)
        return pipe

    # The VM's bytes, to the browser

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._buffer is None:
            self._buffer = bytearray(_HEADROOM + CHUNK)
        return memoryview(self._buffer)[_HEADROOM:]

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self._buffer
        assert buffer is not None
        try:
            self._forward(buffer, nbytes)
        except Exception as exc:  # noqa: BLE001 (said by the handler, which closes 1011)
            self._end(exc)
            self._transport.close()

    def _forward(self, buffer: bytearray, nbytes: int) -> None:
        header = binary_frame_header(nbytes)
        start = _HEADROOM - len(header)
        buffer[start:_HEADROOM] = header
        written = self._send(memoryview(buffer)[start : _HEADROOM + nbytes], nbytes)
        if written is None or written.done():
            return  # out already (the buffer serves the next read), or nowhere to go
        self._buffer = None  # the browser's stream holds it until it is written
        self._transport.pause_reading()
        written.add_done_callback(self._written)

    def _written(self, _: Future[None]) -> None:
        if self._ended is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost ends the relay

    def connection_lost(self, exc: Exception | None) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._end(exc if isinstance(exc, Exception) and not isinstance(exc, ConnectionError) else None)

    def _end(self, exc: BaseException | None) -> None:
        ended, self._ended = self._ended, None
        if ended is not None:
            ended(exc)

    # The browser's bytes, to the VM

    def write(self, data: bytes) -> asyncio.Future[None] | None:
        """Send ``data`` to the VM; a future to wait for while its socket is over its
        high-water mark, else None."""
        if self._transport.is_closing():
            return None
        self._transport.write(data)
        return self._writable

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def close(self) -> None:
        self._ended = None
        self._transport.close()
