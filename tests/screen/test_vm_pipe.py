"""``VMPipe``: the VM's bytes framed into binary WebSocket frames without a copy, paused
while a frame waits, over a real socket pair, on both event loops vmws runs on."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from vmws.loops import run
from vmws.screen.vm_pipe import CHUNK, VMPipe, binary_frame_header

LOOPS = ["asyncio", "uvloop"]


def _on(loop: str, test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    run(asyncio.wait_for(test(), 30), loop)


def _payload(frame: bytes) -> bytes:
    """The payload of one unmasked binary frame, checking its header."""
    assert frame[0] == 0x82 and not frame[1] & 0x80
    n, head = frame[1], 2
    if n == 126:
        n, head = struct.unpack_from("!H", frame, 2)[0], 4
    elif n == 127:
        n, head = struct.unpack_from("!Q", frame, 2)[0], 10
    assert len(frame) == head + n
    return frame[head:]


class _Browser:
    """Collects frames; completes each write at once unless ``holding``."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.sizes: list[int] = []
        self.holding = False
        self.held: list[asyncio.Future[None]] = []
        self.ended: list[BaseException | None] = []
        self.ended_event = asyncio.Event()

    def send(self, frame: memoryview, payload: int) -> asyncio.Future[None]:
        self.frames.append(bytes(frame))  # the buffer may serve the next read: keep a copy
        self.sizes.append(payload)
        written = asyncio.get_running_loop().create_future()
        if self.holding:
            self.held.append(written)
        else:
            written.set_result(None)
        return written

    def end(self, exc: BaseException | None) -> None:
        self.ended.append(exc)
        self.ended_event.set()

    def received(self) -> bytes:
        return b"".join(_payload(f) for f in self.frames)


async def _pipe_over_socketpair(browser: _Browser, before: bytes = b"") -> tuple[VMPipe, socket.socket]:
    ours, vm = socket.socketpair()
    vm.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=ours)
    if before:  # bytes the handshake's reader holds when the relay begins
        vm.send(before)
        while len(reader._buffer) < len(before):  # noqa: SLF001 (a test waiting for the reader to hold them)
            await asyncio.sleep(0.01)
    return await VMPipe.take_over(reader, writer, browser.send, browser.end), vm


@pytest.mark.parametrize("size", [0, 125, 126, 0xFFFF, 0x10000, CHUNK])
def test_frame_headers_are_the_shortest_rfc6455_form(size: int) -> None:
    header = binary_frame_header(size)
    assert _payload(header + bytes(size)) == bytes(size)
    assert len(header) == (2 if size < 126 else 4 if size <= 0xFFFF else 10)


@pytest.mark.parametrize("loop", LOOPS)
def test_megabytes_reach_the_browser_in_order_after_what_the_handshake_left_then_the_end(loop: str) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # about 3 MB

    async def test() -> None:
        browser = _Browser()
        pipe, vm = await _pipe_over_socketpair(browser, before=b"\x02")  # a Bell, read with ServerInit
        await asyncio.get_running_loop().sock_sendall(vm, data)
        vm.close()
        await browser.ended_event.wait()
        assert browser.received() == b"\x02" + data
        assert browser.ended == [None]
        assert max(browser.sizes) <= CHUNK and sum(browser.sizes) == len(data) + 1
        pipe.close()

    _on(loop, test)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_frame_still_waiting_to_be_written_pauses_reading_from_the_vm(loop: str) -> None:
    async def test() -> None:
        browser = _Browser()
        browser.holding = True
        pipe, vm = await _pipe_over_socketpair(browser)
        vm.send(b"first")
        while not browser.frames:
            await asyncio.sleep(0.01)
        vm.send(b"second")
        await asyncio.sleep(0.2)
        assert browser.received() == b"first"  # nothing more read while the frame waits
        browser.holding = False
        browser.held.pop().set_result(None)
        while browser.received() != b"firstsecond":
            await asyncio.sleep(0.01)
        pipe.close()
        vm.close()

    _on(loop, test)


@pytest.mark.parametrize("loop", LOOPS)
def test_writes_to_a_vm_that_stopped_reading_return_a_future_until_it_reads_again(loop: str) -> None:
    async def test() -> None:
        browser = _Browser()
        pipe, vm = await _pipe_over_socketpair(browser)
        block = b"\x03" * 65536
        waiting = None
        for _ in range(1000):  # the socket pair's buffers, then the transport's high-water mark
            waiting = pipe.write(block)
            if waiting is not None:
                break
        assert waiting is not None and not waiting.done()
        loop = asyncio.get_running_loop()
        while not waiting.done():  # the VM reads: the transport drains below its low-water mark
            await loop.sock_recv(vm, 1 << 20)
        assert pipe.write(b"\x03") is None
        pipe.close()
        vm.close()

    _on(loop, test)
