"""vmws/framing.py against the Tornado it runs on: the private names and signatures it
uses still exist, frames it builds parse with python-websockets' own parser, and a
real socket carries what ``write_frame`` and ``StrictWebSocketProtocol`` write.

When a Tornado upgrade fails one of these, read framing.py's docstring and adapt it
there (and only there)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct
from collections.abc import Generator
from typing import Any

import pytest
import tornado.iostream
import tornado.websocket
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from vmws.codes import CloseCode
from vmws.framing import StrictWebSocketProtocol, strict_protocol, text_frame, write_frame


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame in ``data``, as python-websockets reads a server's (unmasked) frames."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser: Generator[None, None, Frame] = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
        else:
            raise AssertionError("incomplete frame")
    return frames


# The private API framing.py relies on, as Tornado 6.x spells it.


def test_the_private_websocket_params_keep_their_signature() -> None:
    params = inspect.signature(tornado.websocket._WebSocketParams)
    assert list(params.parameters) == ["ping_interval", "ping_timeout", "max_message_size", "compression_options"]


def test_the_protocol_keeps_its_constructor_and_private_hooks() -> None:
    protocol13 = tornado.websocket.WebSocketProtocol13
    assert list(inspect.signature(protocol13.__init__).parameters) == ["self", "handler", "mask_outgoing", "params"]
    assert list(inspect.signature(protocol13._handle_message).parameters) == ["self", "opcode", "data"]
    assert list(inspect.signature(protocol13._receive_frame).parameters) == ["self"]
    assert inspect.iscoroutinefunction(protocol13._receive_frame)
    assert list(inspect.signature(tornado.websocket.WebSocketHandler.get_websocket_protocol).parameters) == ["self"]


def test_a_new_protocol_has_the_private_state_it_is_read_through() -> None:
    handler: Any = type("Handler", (), {"ping_interval": None, "ping_timeout": None, "max_message_size": 1024})()
    protocol = strict_protocol(handler)
    assert isinstance(protocol, StrictWebSocketProtocol)
    assert protocol.params.max_message_size == 1024 and protocol.params.compression_options is None
    assert protocol.stream is None  # set by Tornado once the upgrade is accepted
    assert protocol._frame_mask is None and protocol._frame_compressed is None
    assert protocol.client_terminated is False


# Frames as python-websockets reads them.


@pytest.mark.parametrize("size", [0, 1, 125, 126, 0xFFFF, 0x10000, 16 * 1024 - 1, 16 * 1024, 300_000])
def test_a_text_frame_of_any_length_parses_as_one_final_text_frame(size: int) -> None:
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    pieces = text_frame(text)
    assert len(pieces) == (2 if len(text.encode()) >= 16 * 1024 else 1)
    (frame,) = parse_frames(b"".join(pieces))
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1
    assert frame.data.decode("utf-8") == text


def test_a_broadcast_text_is_framed_once() -> None:
    text = "a broadcast" * 10
    assert text_frame(text) is text_frame(text)
    assert parse_frames(b"".join(text_frame("other")))[0].data == b"other"


# Over a real socket.


async def _connected_protocol() -> tuple[StrictWebSocketProtocol, socket.socket]:
    ours, theirs = socket.socketpair()
    handler: Any = type("Handler", (), {"ping_interval": None, "ping_timeout": None, "max_message_size": 1024})()
    protocol = strict_protocol(handler)
    protocol.stream = tornado.iostream.IOStream(ours)
    theirs.setblocking(False)
    return protocol, theirs


async def _received(peer: socket.socket, at_least: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < at_least:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), 10)
        assert chunk, "the connection closed early"
        data += chunk
    return data


@pytest.mark.asyncio
async def test_write_frame_puts_the_frame_on_the_stream_and_stops_once_closing() -> None:
    protocol, peer = await _connected_protocol()
    try:
        text = "y" * 70_000
        pieces = text_frame(text)
        future = write_frame(protocol, pieces)
        assert future is not None
        (frame,) = parse_frames(await _received(peer, sum(map(len, pieces))))
        assert frame.data.decode() == text
        protocol.server_terminated = True  # what Tornado sets once a close frame went out
        assert write_frame(protocol, text_frame("late")) is None
    finally:
        assert protocol.stream is not None
        protocol.stream.close()
        peer.close()


@pytest.mark.asyncio
async def test_an_invalid_close_code_from_the_peer_is_answered_with_1002_through_handle_message() -> None:
    protocol, peer = await _connected_protocol()
    try:
        protocol._frame_mask = b"\x01\x02\x03\x04"  # the frame was masked, as a client's must be
        protocol._frame_compressed = False
        assert protocol._handle_message(0x8, struct.pack("!H", 1005)) is None
        (frame,) = parse_frames(await _received(peer, 4))
        assert frame.opcode is Opcode.CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == CloseCode.PROTOCOL_ERROR
        assert frame.data[2:] == b"invalid close code 1005"
    finally:
        assert protocol.stream is not None
        protocol.stream.close()
        peer.close()
