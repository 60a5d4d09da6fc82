"""A simulated VM's screen over the socket ``Simulator.open_screen`` returns, read with
the tests' RFB client and compared as text (``simulator.screen.font.read_text``)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from simulator.screen.font import read_text
from simulator.screen.pixels import SERVER_FORMAT
from tests.rfb_client import ENCODING_COPYRECT, ENCODING_RAW, VERSION_38, RFBClient, StreamTransport
from tests.simulator.screenview import last_lines, log_in, picture, simulator, text, viewer
from vmws.backend import Action, VMInfo, VMStatus
from vmws.errors import VMNotFound, VMNotRunning

pytestmark = pytest.mark.asyncio


async def test_handshake_and_server_init_name_the_vm_and_its_640x400_true_colour_screen() -> None:
    sim, _ = simulator()
    client = await viewer(sim, "web-1")
    assert client.server_version == VERSION_38
    assert (client.width, client.height, client.name) == (640, 400, "web-1")
    await client.close()


async def test_the_first_full_update_is_one_raw_640x400_rectangle_showing_the_boot_log_and_tty1_login() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await client.request_update(incremental=False)
    rects = await client.read_update()
    assert [(r.x, r.y, r.width, r.height, r.encoding) for r in rects] == [(0, 0, 640, 400, ENCODING_RAW)]
    lines = last_lines(text(client))
    assert any("[  OK  ] Reached target Multi-User System." in line for line in lines)
    assert any(line.startswith("[    ") for line in lines)  # kernel lines, with their timestamps
    assert lines[-3:] == ["Ubuntu 22.04.4 LTS my-vm tty1", "", "my-vm login:"]
    await client.close()


async def test_typing_admin_admin_on_the_screen_logs_in_on_tty1_not_on_the_serial_console() -> None:
    sim, _ = simulator()
    serial = sim.open_console("my-vm", lambda: None)
    client = await viewer(sim)
    await picture(client)
    await client.type_text("admin\n")
    assert last_lines(await picture(client))[-1] == "Password:"  # not echoed
    await client.type_text("admin\n")
    lines = last_lines(await picture(client))
    assert lines[-1] == "admin@my-vm:~$"
    assert any("Welcome to Ubuntu 22.04.4 LTS" in line for line in lines)
    await client.type_text("whoami\n")
    assert last_lines(await picture(client))[-2:] == ["admin", "admin@my-vm:~$"]
    # the serial console has its own getty, still waiting
    assert serial.read().endswith(b"my-vm login: ")
    await client.close()


async def test_keys_make_incremental_updates_and_a_scroll_is_a_copyrect_plus_the_new_rows() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await picture(client)  # the screen is full: the next lines scroll it
    await client.type_text("x")
    await client.request_update()
    rects = await client.read_update()
    assert [(r.y, r.height, r.encoding) for r in rects] == [(384, 16, ENCODING_RAW)]  # only the login row
    await client.type_text("\n")  # Password: on a new line, the screen scrolls by one
    await client.request_update()
    rects = await client.read_update()
    # rows 1-23 moved up (row 24 moved too, but lost its cursor: it is redrawn)
    assert rects[0].encoding == ENCODING_COPYRECT and (rects[0].y, rects[0].height) == (0, 23 * 16)
    assert all(r.encoding == ENCODING_RAW for r in rects[1:])
    assert sum(r.height for r in rects[1:]) <= 2 * 16
    # what the viewer pieced together is what a new viewer gets whole
    other = await viewer(sim)
    await picture(other)
    assert other.framebuffer == client.framebuffer
    assert last_lines(text(client))[-1] == "Password:"
    await client.close()
    await other.close()


async def test_two_viewers_share_one_screen_and_one_tty1_session() -> None:
    sim, _ = simulator()
    first, second = await viewer(sim), await viewer(sim)
    await first.type_text("admin\n")
    await picture(first)  # the keys are in
    await second.type_text("admin\n")
    assert last_lines(await picture(second))[-1] == "admin@my-vm:~$"
    await picture(first)
    assert first.framebuffer == second.framebuffer
    await first.close()
    await second.close()


async def test_latin1_keys_are_typed_as_utf8_and_drawn_with_the_font() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await client.type_text("ç")
    await client.press(0xE9)  # keysym eacute
    assert last_lines(await picture(client))[-1] == "my-vm login: çé"
    await client.close()


async def test_ctrl_alt_del_reboots_the_guest_through_the_restart_path() -> None:
    sim, clock = simulator()
    statuses: list[VMInfo] = []
    sim.subscribe(statuses.append)
    uptime_before = sim.info("my-vm").uptime
    client = await viewer(sim)
    await client.ctrl_alt_del()
    await picture(client)  # the keys are in
    seen: list[list[str]] = []
    for _ in range(50):  # 5 s: shutdown lines, the reset, the boot log, getty
        clock.advance(0.1)
        seen.append(last_lines(await picture(client)))
    shutdown = next(i for i, lines in enumerate(seen) if "[  OK  ] Stopped Network Service." in lines[-1])
    # then the reset clears the screen and the new boot starts at its top
    assert any(lines[0].startswith("[    0.000000] Linux version") for lines in seen[shutdown + 1 :])
    assert seen[-1][-1] == "my-vm login:"
    assert [s.status for s in statuses if s.name == "my-vm"] == [VMStatus.RUNNING]  # a new boot
    assert sim.info("my-vm").uptime < uptime_before
    assert any("ctrl-alt-del" in entry.text for entry in sim.events.entries)
    await client.close()


async def test_a_paused_vm_s_screen_is_accepted_frozen_and_drops_keys_until_resumed() -> None:
    sim, clock = simulator()
    sim.perform("my-vm", Action.PAUSE, done=lambda outcome: None)
    clock.advance(1.0)
    assert sim.info("my-vm").status is VMStatus.PAUSED
    client = await viewer(sim)
    before = await picture(client)  # a full request is answered with the frozen picture
    assert last_lines(before)[-1] == "my-vm login:"
    await client.type_text("admin\n")
    assert await picture(client) == before
    sim.perform("my-vm", Action.RESUME, done=lambda outcome: None)
    clock.advance(1.0)
    assert await picture(client) == before  # the keys were dropped, not held
    await client.type_text("admin\n")
    assert last_lines(await picture(client))[-1] == "Password:"
    await client.close()


async def test_a_stopped_vm_has_no_screen_and_an_unknown_one_is_not_found() -> None:
    sim, _ = simulator()
    with pytest.raises(VMNotRunning):
        sim.open_screen("db-1")
    with pytest.raises(VMNotRunning):
        sim.open_screen("cache-1")  # suspended
    with pytest.raises(VMNotFound):
        sim.open_screen("nope")


@pytest.mark.parametrize("asks_again", [True, False], ids=["request-pending", "no-request-pending"])
async def test_a_stop_sends_each_viewer_its_last_update_then_closes(asks_again: bool) -> None:
    sim, clock = simulator()
    client = await viewer(sim)
    await picture(client)
    if asks_again:
        await client.request_update()
    sim.perform("my-vm", Action.STOP, done=lambda outcome: None)
    clock.advance(0.01)
    await picture(client)  # the power button was pressed
    clock.advance(5.0)  # systemd's shutdown lines, then the power-off
    assert sim.info("my-vm").status is VMStatus.STOPPED
    updates = 0
    with pytest.raises(EOFError):
        while True:
            await client.read_update()
            updates += 1
    assert updates >= 1
    lines = last_lines(text(client))
    assert "reboot: Power down" in lines[-1]
    await client.close()
    with pytest.raises(VMNotRunning):
        sim.open_screen("my-vm")


async def test_a_crash_shows_the_kernel_panic_then_closes() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await picture(client)
    assert sim.machine("my-vm").crash()
    with pytest.raises(EOFError):
        while True:
            await client.read_update()
    assert "end Kernel panic - not syncing: Fatal exception" in last_lines(text(client))[-1]
    await client.close()


async def test_same_seed_same_keys_same_frames() -> None:
    async def run() -> bytes:
        sim, clock = simulator(seed=7)
        client = await viewer(sim, "web-2")
        await log_in(client)
        await client.type_text("uname -a\nls\n")
        await picture(client)
        await client.ctrl_alt_del()
        await picture(client)
        for _ in range(30):
            clock.advance(0.1)
            await client.request_update(incremental=False)
            await client.read_update()
        assert last_lines(text(client))[-1] == "web-2 login:"  # rebooted
        await client.close()
        return bytes(client.framebuffer)

    first, second = await run(), await run()
    assert first == second


async def test_any_true_colour_pixel_format_draws_the_same_text() -> None:
    """A big-endian BGR client and a 16-bit one see the picture the default one does."""
    sim, _ = simulator()
    reference = await viewer(sim)
    expected = await picture(reference)
    for bpp, big, maxes, shifts in ((32, 1, (255, 255, 255), (0, 8, 16)), (16, 0, (31, 63, 31), (11, 5, 0))):
        client = await viewer(sim)
        fmt = struct.pack(">BBBBHHHBBB3x", bpp, 24 if bpp == 32 else 16, big, 1, *maxes, *shifts)
        await client.transport.write(b"\x00\x00\x00\x00" + fmt)
        await client.request_update(incremental=False)
        (kind,) = await client.transport.read_exactly(1)
        (count,) = struct.unpack(">xH", await client.transport.read_exactly(3))
        x, y, w, h, encoding = struct.unpack(">HHHHi", await client.transport.read_exactly(12))
        assert (kind, count, x, y, w, h, encoding) == (0, 1, 0, 0, 640, 400, ENCODING_RAW)
        raw = await client.transport.read_exactly(w * h * bpp // 8)
        # turn each pixel back into the reference client's bytes, then read the text
        size = bpp // 8
        order = "big" if big else "little"
        converted = bytearray()
        for i in range(0, len(raw), size):
            value = int.from_bytes(raw[i : i + size], order)
            r, g, b = ((value >> s) & m for s, m in zip(shifts, maxes, strict=True))
            converted += bytes((r * 255 // maxes[0], g * 255 // maxes[1], b * 255 // maxes[2], 0))
        assert [line.rstrip() for line in read_text(converted, 640, 400)] == expected
        await client.close()
    assert SERVER_FORMAT.bits_per_pixel == 32
    await reference.close()


async def test_a_viewer_that_asks_for_no_copyrect_gets_raw_rows_only() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await client.transport.write(struct.pack(">BxHi", 2, 1, ENCODING_RAW))  # SetEncodings: Raw only
    await picture(client)
    await client.type_text("\n")
    await client.request_update()
    rects = await client.read_update()
    assert {r.encoding for r in rects} == {ENCODING_RAW}
    await client.close()


async def test_a_flood_on_tty1_goes_at_the_viewers_pace_and_ctrl_c_stops_it() -> None:
    sim, _ = simulator()
    client = await viewer(sim)
    await log_in(client)
    await client.type_text("seq 1000000\n")
    await client.request_update()
    await client.read_update()  # the command line's echo
    last = []
    for _ in range(3):
        await client.request_update()
        await client.read_update()
        last.append(int(last_lines(text(client))[-1]))
    assert last == sorted(last) and last[0] < last[-1] < 1000000
    await client.key(0xFFE3, down=True)
    await client.press(ord("c"))
    await client.key(0xFFE3, down=False)
    lines = last_lines(await picture(client))
    assert lines[-2:] == ["^C", "admin@my-vm:~$"]
    await client.close()


async def test_a_tcp_connection_served_by_display_serve_is_a_viewer_like_open_screens() -> None:
    sim, _ = simulator()
    sim.open_screen("my-vm").close()  # makes the display
    display = sim.machine("my-vm").screen
    assert display is not None
    listener = socket.create_server(("127.0.0.1", 0))
    client_sock = socket.create_connection(listener.getsockname()[:2])
    served, _ = listener.accept()
    listener.close()
    display.serve(served, asyncio.get_running_loop())
    client = await RFBClient.connect(await StreamTransport.over_socket(client_sock))
    assert (client.width, client.height, client.name) == (640, 400, "my-vm")
    assert last_lines(await picture(client))[-1] == "my-vm login:"
    assert len(display.sessions) == 1
    await client.close()
    for _ in range(100):  # the link sees the viewer's end of stream on its next read
        if not display.sessions:
            break
        await asyncio.sleep(0.01)
    assert display.sessions == ()
    assert served.fileno() == -1  # closed with its session
