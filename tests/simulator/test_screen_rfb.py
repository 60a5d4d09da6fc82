"""The screen's RFB server against hostile or unusual viewers: over the socket
``open_screen`` returns, and (for what a socket cannot show) the session alone."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from simulator.screen.rfb import RFBSession
from simulator.screen.terminal import LINES, Row, Terminal
from tests.rfb_client import PIXEL_FORMAT, VERSION_38, RFBClient, StreamTransport
from tests.simulator.screenview import last_lines, picture, simulator, viewer

FRAME = 640 * 400 * 4 + 4 + 12  # one full Raw update


async def raw_viewer(sock: socket.socket) -> StreamTransport:
    return await StreamTransport.over_socket(sock)


async def handshake(t: StreamTransport) -> None:
    assert await t.read_exactly(12) == VERSION_38
    await t.write(VERSION_38)
    assert await t.read_exactly(2) == b"\x01\x01"
    await t.write(b"\x01")
    assert await t.read_exactly(4) == b"\x00\x00\x00\x00"
    await t.write(b"\x01")
    (length,) = struct.unpack(">20xI", await t.read_exactly(24))
    await t.read_exactly(length)


async def until_closed(t: StreamTransport) -> bytes:
    """Everything the server still sends before it closes the socket."""
    data = bytearray()
    while True:
        try:
            data += await t.read_exactly(1)
        except EOFError:
            return bytes(data)


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("after_handshake", "payload", "logged"),
    [
        (False, b"HELLO WORLD!", "sent b'HELLO WORLD!' instead of an RFB version"),
        (False, b"RFB 004.000\n", "asked for RFB 4.0 (3.x only)"),
        (True, b"\x07\x00\x00\x00", "unknown message type 7"),
        (True, b"\xff\x00\x00\x00", "unknown message type 255"),
        (True, b"\x00\x00\x00\x00" + struct.pack(">BBBBHHHBBB3x", 8, 8, 0, 0, 0, 0, 0, 0, 0, 0), "colour-map"),
    ],
    ids=["garbage-version", "rfb-4", "unknown-type", "qemu-message-not-offered", "colour-map-format"],
)
@pytest.mark.asyncio
async def test_a_viewer_breaking_the_protocol_is_closed_with_a_log_line_not_an_error(
    caplog: pytest.LogCaptureFixture, after_handshake: bool, payload: bytes, logged: str
) -> None:
    caplog.set_level(logging.INFO, "simulator.screen")
    sim, _ = simulator()
    t = await raw_viewer(sim.open_screen("my-vm"))
    if after_handshake:
        await handshake(t)
    else:
        await t.read_exactly(12)
    await t.write(payload)
    await until_closed(t)
    await t.close()
    assert any(logged in r.getMessage() and "my-vm" in r.getMessage() for r in caplog.records)
    no_errors(caplog)
    assert sim.machine("my-vm").screen is not None and sim.machine("my-vm").screen.sessions == ()


@pytest.mark.asyncio
async def test_a_security_type_not_offered_gets_a_failure_reason_then_the_socket_closes() -> None:
    sim, _ = simulator()
    t = await raw_viewer(sim.open_screen("my-vm"))
    await t.read_exactly(12)
    await t.write(VERSION_38)
    await t.read_exactly(2)
    await t.write(b"\x02")  # VNC authentication
    rest = await until_closed(t)
    assert rest[:4] == b"\x00\x00\x00\x01" and b"None only" in rest
    await t.close()


@pytest.mark.parametrize("version", [b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.889\n"])
@pytest.mark.asyncio
async def test_older_and_newer_3_x_viewers_are_served(version: bytes) -> None:
    sim, _ = simulator()
    t = await raw_viewer(sim.open_screen("my-vm"))
    await t.read_exactly(12)
    await t.write(version)
    if version == b"RFB 003.003\n":
        assert await t.read_exactly(4) == b"\x00\x00\x00\x01"  # the server chose None
    else:
        assert await t.read_exactly(2) == b"\x01\x01"
        await t.write(b"\x01")
        if version != b"RFB 003.007\n":
            assert await t.read_exactly(4) == b"\x00\x00\x00\x00"
    await t.write(b"\x01")
    width, height = struct.unpack(">HH", await t.read_exactly(4))
    assert (width, height) == (640, 400)
    await t.close()


@pytest.mark.asyncio
async def test_a_huge_cut_text_is_discarded_as_it_streams_and_the_session_goes_on() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    size = 8 << 20
    await client.transport.write(struct.pack(">B3xI", 6, size))
    chunk = b"x" * (256 << 10)
    for _ in range(size // len(chunk)):
        await client.transport.write(chunk)
        (session,) = sim.machine("my-vm").screen.sessions  # type: ignore[union-attr]
        assert len(session._in) <= 64 * 1024  # never buffered beyond one read
    await client.pointer(10, 10, 1)  # ignored too
    await client.type_text("admin")
    assert last_lines(await picture(client))[-1] == "my-vm login: admin"
    await client.close()


@pytest.mark.asyncio
async def test_the_most_encodings_a_message_can_carry_and_empty_or_outside_regions_are_fine() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await client.transport.write(struct.pack(">BxH", 2, 65535) + struct.pack(">i", 1) * 65535)
    await client.transport.write(struct.pack(">BBHHHH", 3, 0, 5000, 5000, 10, 10))  # outside the screen
    assert await client.read_update() == []
    await client.transport.write(struct.pack(">BBHHHH", 3, 0, 0, 0, 0, 0))  # empty
    assert await client.read_update() == []
    await client.transport.write(struct.pack(">BBHHHH", 3, 0, 636, 396, 60000, 60000))  # clipped to one cell
    (rect,) = await client.read_update()
    assert (rect.x, rect.y, rect.width, rect.height) == (632, 384, 8, 16)
    await client.close()


@pytest.mark.asyncio
async def test_a_viewer_that_never_reads_holds_one_frame_at_most() -> None:
    sim, _ = simulator()
    sock = sim.open_screen("my-vm")
    client = await RFBClient.connect(await StreamTransport.over_socket(sock))
    request = struct.pack(">BBHHHH", 3, 0, 0, 0, 640, 400)
    for _ in range(200):
        await client.transport.write(request)
        await client.type_text("a")
    (session,) = sim.machine("my-vm").screen.sessions  # type: ignore[union-attr]
    for _ in range(100):  # let the server read all of it (bounded: no assertion on time)
        if not session._in and session._request is not None:
            break
        await asyncio.sleep(0.01)
    assert len(session.output) <= FRAME
    await client.close()


# The session alone, with a scripted screen (what a socket cannot show deterministically)


class ScriptedScreen:
    name = "vm"

    def __init__(self) -> None:
        self.frozen = False
        self.terminal = Terminal()
        self.typed = bytearray()
        self.salutes = 0

    def rows(self) -> list[Row]:
        return self.terminal.rows()

    def pump(self) -> bool:
        return False

    def type(self, data: bytes) -> None:
        self.typed += data

    def ctrl_alt_del(self) -> None:
        self.salutes += 1


def connected(screen: ScriptedScreen) -> RFBSession:
    session = RFBSession(screen, lambda: None)
    session.receive(VERSION_38 + b"\x01" + b"\x01")
    session.receive(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
    session.output.clear()
    return session


def key(keysym: int, down: bool) -> bytes:
    return struct.pack(">BBxxI", 4, int(down), keysym)


def update_request(incremental: bool) -> bytes:
    return struct.pack(">BBHHHH", 3, int(incremental), 0, 0, 640, 400)


def test_while_frozen_incremental_requests_wait_and_keys_are_dropped() -> None:
    screen = ScriptedScreen()
    session = connected(screen)
    session.receive(update_request(False))
    assert len(session.output) == FRAME
    session.output.clear()
    screen.frozen = True
    session.receive(update_request(True) + key(ord("a"), True) + key(ord("a"), False))
    screen.terminal.feed(b"changed while frozen")
    session.update()
    assert session.output == b"" and screen.typed == b""
    screen.frozen = False
    session.update()  # the machine wakes its viewers on resume
    assert session.output[:4] == b"\x00\x00\x00\x01"  # one rectangle: the changed row
    session.output.clear()
    session.sent()
    session.receive(key(ord("a"), True))
    assert screen.typed == b"a"


def test_ctrl_alt_del_with_either_ctrl_and_alt_and_delete_or_keypad_delete() -> None:
    screen = ScriptedScreen()
    session = connected(screen)
    for ctrl, alt, delete in ((0xFFE3, 0xFFE9, 0xFFFF), (0xFFE4, 0xFFEA, 0xFF9F)):
        session.receive(key(ctrl, True) + key(alt, True) + key(delete, True) + key(delete, False))
        session.receive(key(alt, False) + key(ctrl, False))
    assert screen.salutes == 2
    session.receive(key(0xFFE3, True) + key(0xFFFF, True))  # Ctrl-Del alone is just Delete's sequence
    assert screen.typed == b"\x1b[3~" and screen.salutes == 2


def test_finish_sends_what_changed_even_unasked_then_is_done() -> None:
    screen = ScriptedScreen()
    session = connected(screen)
    session.receive(update_request(False))
    session.output.clear()
    session.sent()
    screen.terminal.feed(b"\r\n" * (LINES - 1) + b"reboot: Power down")
    session.finish()
    assert session.output[:2] == b"\x00\x00" and session.done
