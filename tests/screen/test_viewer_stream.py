"""The browser's side of the screen, parsed (``ViewerStream``): the handshake the gateway
answers, message boundaries across any split, bounds, and view-only filtering."""

from __future__ import annotations

import struct

import pytest

from vmws.screen.rfb import RFBViolation
from vmws.screen.viewer_stream import GREETING, MAX_CUT_TEXT_BYTES, MAX_ENCODINGS, ViewerStream

SERVER_INIT = struct.pack(">HH16sI", 720, 400, bytes(16), 5) + b"vm-01"
KEY_A = struct.pack(">BBxxI", 4, 1, ord("a"))
POINTER = struct.pack(">BBHH", 5, 1, 10, 20)
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 0, 0, 0, 720, 400)
CUT_TEXT = struct.pack(">B3xI", 6, 5) + b"hello"
QEMU_KEY = struct.pack(">BBHII", 255, 0, 1, ord("a"), 0x1E)
PIXEL_FORMAT = struct.pack(">B3x16s", 0, bytes(16))
FENCE = struct.pack(">B3xIB", 248, 0, 3) + b"abc"


def past_handshake(*, view_only: bool = False) -> ViewerStream:
    stream = ViewerStream(SERVER_INIT, view_only=view_only)
    answer, to_vm = stream.feed(b"RFB 003.008\n\x01\x00")
    assert answer == b"\x01\x01" + b"\x00\x00\x00\x00" + SERVER_INIT and to_vm == b""
    assert stream.relaying
    return stream


def test_the_greeting_is_version_3_8() -> None:
    assert GREETING == b"RFB 003.008\n"


@pytest.mark.parametrize(
    ("version", "answer"),
    [
        (b"RFB 003.008\n", b"\x01\x01"),  # a list with None; SecurityResult after the choice
        (b"RFB 003.007\n", b"\x01\x01"),
        (b"RFB 003.003\n", b"\x00\x00\x00\x01"),  # 3.3: the server names None
    ],
)
def test_handshake_of_each_version(version: bytes, answer: bytes) -> None:
    stream = ViewerStream(SERVER_INIT, view_only=False)
    assert stream.feed(version) == (answer, b"")
    if version != b"RFB 003.003\n":
        result = b"\x00\x00\x00\x00" if version == b"RFB 003.008\n" else b""  # 3.7: none after None
        assert stream.feed(b"\x01") == (result, b"")
    # ClientInit: its shared flag (0 here) is ignored; ServerInit comes back as the VM sent it
    assert stream.feed(b"\x00") == (SERVER_INIT, b"")
    assert stream.relaying


def test_a_handshake_split_byte_by_byte_and_messages_pipelined_behind_it() -> None:
    stream = ViewerStream(SERVER_INIT, view_only=False)
    data = b"RFB 003.008\n\x01\x01" + UPDATE_REQUEST + KEY_A
    answers, to_vm = b"", b""
    for i in range(len(data)):
        answer, forwarded = stream.feed(data[i : i + 1])
        answers += answer
        to_vm += forwarded
    assert answers == b"\x01\x01\x00\x00\x00\x00" + SERVER_INIT
    assert to_vm == UPDATE_REQUEST + KEY_A


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        (b"GET / HTTP/1.1\n", "not an RFB protocol version"),
        (b"RFB 003.00x\n", "not an RFB protocol version"),
        (b"RFB 004.001\n", "RFB version 4.1"),
        (b"RFB 003.005\n", "RFB version 3.5"),
    ],
)
def test_a_bad_version_is_refused(first: bytes, problem: str) -> None:
    with pytest.raises(RFBViolation, match=problem):
        ViewerStream(SERVER_INIT, view_only=False).feed(first)


def test_a_security_type_not_offered_is_refused() -> None:
    stream = ViewerStream(SERVER_INIT, view_only=False)
    stream.feed(b"RFB 003.008\n")
    with pytest.raises(RFBViolation, match="security type 2 was not offered"):
        stream.feed(b"\x02")


def test_every_message_noVNC_sends_is_relayed_whole_across_any_split() -> None:
    encodings = struct.pack(">BxH3i", 2, 3, 0, 1, -223)
    ext_size = struct.pack(">BxHHBx", 251, 800, 600, 1) + bytes(16)
    messages = [
        PIXEL_FORMAT,
        encodings,
        UPDATE_REQUEST,
        KEY_A,
        POINTER,
        CUT_TEXT,
        struct.pack(">BBHHHH", 150, 1, 0, 0, 720, 400),  # EnableContinuousUpdates
        FENCE,
        struct.pack(">BxBB", 250, 1, 4),  # XVP reboot
        ext_size,
        QEMU_KEY,
        struct.pack(">BBH", 255, 1, 0),  # QEMU audio enable
        struct.pack(">BBHBBI", 255, 1, 2, 3, 2, 44100),  # QEMU audio set format
        struct.pack(">B3xi", 6, -4) + b"\x10\x00\x00\x01",  # extended clipboard caps
    ]
    data = b"".join(messages)
    for size in (1, 3, 7, len(data)):
        stream = past_handshake()
        out = b"".join(stream.feed(data[i : i + size])[1] for i in range(0, len(data), size))
        assert out == data, size


def test_extended_mouse_buttons_is_stripped_from_set_encodings() -> None:
    stream = past_handshake()
    _, to_vm = stream.feed(struct.pack(">BxH3i", 2, 3, 0, -316, 1))
    assert to_vm == struct.pack(">BxH2i", 2, 2, 0, 1)


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (struct.pack(">B3xI", 6, 0xFFFFFFFF), "ClientCutText of 1 bytes"),  # -1: extended form, fine below
        (struct.pack(">B3xI", 6, 0x7FFFFFFF), f"ClientCutText of {0x7FFFFFFF} bytes"),
        (struct.pack(">B3xi", 6, -(MAX_CUT_TEXT_BYTES + 1)), f"of {MAX_CUT_TEXT_BYTES + 1} bytes"),
        (struct.pack(">BxH", 2, MAX_ENCODINGS + 1), f"SetEncodings with {MAX_ENCODINGS + 1}"),
        (struct.pack(">B3xIB", 248, 0, 65), "ClientFence payload of 65"),
        (b"\x07", "unknown RFB client message type 7"),
        (b"\xff\x09", "unknown QEMU client message sub-type 9"),
        (struct.pack(">BBH", 255, 1, 7), "unknown QEMU audio operation 7"),
    ],
)
def test_hostile_messages_are_refused_before_anything_is_buffered(message: bytes, problem: str) -> None:
    stream = past_handshake()
    if problem == "ClientCutText of 1 bytes":  # a length of -1 is a valid 1-byte extended message
        assert stream.feed(message + b"x")[1] == message + b"x"
        return
    with pytest.raises(RFBViolation, match=problem):
        stream.feed(message)


def test_view_only_drops_input_and_keeps_the_rest() -> None:
    stream = past_handshake(view_only=True)
    xvp = struct.pack(">BxBB", 250, 1, 4)
    resize = struct.pack(">BxHHBx", 251, 800, 600, 1) + bytes(16)
    data = KEY_A + POINTER + UPDATE_REQUEST + CUT_TEXT + QEMU_KEY + xvp + resize + PIXEL_FORMAT + FENCE
    _, to_vm = stream.feed(data)
    assert to_vm == UPDATE_REQUEST + PIXEL_FORMAT + FENCE
    assert stream.dropped == 6
