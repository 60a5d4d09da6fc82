"""The screen endpoint over a real server, against scripted VM screens: the handshake on
both sides, the relay, view-only filtering, hostile browsers, the VM hanging up."""

from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest

from tests.e2e.client import token
from tests.rfb_client import RFBClient, WebSocketTransport
from tests.screen.gateway import ScriptedScreens, frames_until_closed, gateway, screen, viewer, watch_token
from tests.screen.scripted_server import Script
from vmws.backend import Backend
from vmws.backends.simulator import SimulatorBackend

pytestmark = pytest.mark.asyncio

KEY_A_DOWN = struct.pack(">BBxxI", 4, 1, ord("a"))
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 0, 0, 0, 16, 8)


async def received_by_vm(backend: ScriptedScreens, needle: bytes, index: int = 0) -> None:
    async with asyncio.timeout(10):
        while needle not in backend.scripts[index].received:
            await asyncio.sleep(0.01)


async def test_first_frame_is_the_version_and_the_subprotocol_is_binary() -> None:
    backend = ScriptedScreens(speed=20.0)
    async with gateway(backend) as server, screen(server, "my-vm") as ws:
        assert ws.subprotocol == "binary"
        assert await ws.recv() == b"RFB 003.008\n"


async def test_handshake_relays_server_init_and_asks_the_vm_for_a_shared_session() -> None:
    backend = ScriptedScreens(lambda: Script(name=b"my-vm screen", width=640, height=480), speed=20.0)
    async with gateway(backend) as server, screen(server, "my-vm") as ws:
        client = await RFBClient.connect(WebSocketTransport(ws), shared=False)
        assert (client.width, client.height, client.name) == (640, 480, "my-vm screen")
        assert client.server_version == b"RFB 003.008\n"
        await client.key(ord("a"), down=True)
        await received_by_vm(backend, KEY_A_DOWN)
        # the browser asked for an exclusive session; the VM was asked for a shared one
        assert backend.scripts[0].shared == 1 and backend.scripts[0].client_security == 1


@pytest.mark.parametrize("how", ["query", "token"])
async def test_view_only_input_is_dropped_at_the_gateway(how: str) -> None:
    backend = ScriptedScreens(speed=20.0)
    kwargs = {"mode": "watch"} if how == "query" else {"tok": watch_token()}
    async with gateway(backend) as server, viewer(server, "my-vm", **kwargs) as client:
        await client.type_text("rm -rf /\n")
        await client.pointer(3, 4, 1)
        await client.ctrl_alt_del()
        await client.request_update(incremental=False)
        await received_by_vm(backend, UPDATE_REQUEST)
        received = bytes(backend.scripts[0].received)
        # the set-up messages and the update request arrived, nothing typed or pointed
        assert received.endswith(UPDATE_REQUEST) and b"\x04\x01" not in received and b"\x05\x01" not in received


async def test_a_browser_over_the_frame_rate_is_slowed_down_and_loses_nothing() -> None:
    # --max-message-rate 1: a screen takes 20 frames a second, in bursts of up to 40.
    backend = ScriptedScreens(speed=20.0)
    async with gateway(backend, max_message_rate=1.0) as server, viewer(server, "my-vm") as client:
        started = time.monotonic()
        moves = [struct.pack(">BBHH", 5, 0, x, 7) for x in range(100)]
        for move in moves:  # each its own frame, sent at once
            await client.pointer(*struct.unpack(">xxHH", move))
        async with asyncio.timeout(30):
            while moves[-1] not in backend.scripts[0].received:
                await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        received = bytes(backend.scripts[0].received)
        # every move arrived, once and in order; the handshake's frames came out of the
        # burst too, so the last 60 moves at least waited their turn: 3 s at 20 a second
        assert received.endswith(b"".join(moves))
        assert elapsed >= 2.5, f"100 frames over the rate took only {elapsed:.2f} s"


async def test_two_viewers_each_get_their_own_shared_vm_connection() -> None:
    backend = ScriptedScreens(speed=20.0)
    async with gateway(backend) as server, viewer(server, "my-vm") as a, viewer(server, "my-vm") as b:
        await a.press(ord("a"))
        await b.press(ord("b"))
        await received_by_vm(backend, struct.pack(">BBxxI", 4, 1, ord("a")), 0)
        await received_by_vm(backend, struct.pack(">BBxxI", 4, 1, ord("b")), 1)
        assert [s.shared for s in backend.scripts] == [1, 1]


async def test_the_vm_hanging_up_delivers_what_it_sent_then_closes_1000() -> None:
    bell = b"\x02"
    backend = ScriptedScreens(lambda: Script(hang_up_with=bell * 3), speed=20.0)
    async with gateway(backend) as server, viewer(server, "my-vm") as client:
        assert isinstance(client.transport, WebSocketTransport)
        ws = client.transport.ws
        rest = b"".join(f for f in await frames_until_closed(ws) if isinstance(f, bytes))
        assert bytes(client.transport._buffer) + rest == bell * 3  # what came with ServerInit, then the rest
        assert ws.close_code == 1000 and ws.close_reason == "the VM's screen closed"


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (b"GET / HTTP/1.0\r\n", "RFB: not an RFB protocol version string"),
        (b"RFB 003.008\n\x02", "RFB: security type 2 was not offered (only None, 1)"),
        (b"RFB 003.008\n\x01\x01" + struct.pack(">B3xI", 6, 0xFFFFFF), "RFB: ClientCutText of 16777215 bytes"),
        (b"RFB 003.008\n\x01\x01\x63", "RFB: unknown RFB client message type 99"),
        ("RFB 003.008\n", "text frames are not accepted: RFB goes in binary frames"),
    ],
)
async def test_hostile_browsers_are_closed_with_a_reason_and_no_traceback(
    sent: bytes | str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = ScriptedScreens(speed=20.0)
    async with gateway(backend) as server, screen(server, "my-vm") as ws:
        assert await ws.recv() == b"RFB 003.008\n"
        await ws.send(sent)
        frames = await frames_until_closed(ws)
        assert all(isinstance(f, bytes) for f in frames)
        assert ws.close_code == 1008 and ws.close_reason.startswith(reason)
        await backend.served()  # the VM's socket was closed: its server saw the end
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text


# Tokens are minted in the test, not at collection: xdist workers must collect the same ids.
_TOKENS = {
    "bad": lambda: "not-a-token",
    "no-console": lambda: token(["read", "control"]),
    "other-vms": lambda: token(["console"], vms=["web-*"]),
    "all": lambda: token(),
}


@pytest.mark.parametrize(
    ("vm", "tok", "code", "reason"),
    [
        ("my-vm", "bad", 4001, "not authenticated"),
        ("my-vm", "no-console", 4003, "forbidden"),
        ("my-vm", "other-vms", 4003, "forbidden"),
        ("ghost", "all", 4004, "no such VM"),
        ("db-1", "all", 4009, "VM is not running"),
        ("cache-1", "all", 4009, "VM is not running"),
        ("legacy-1", "all", 4009, "VM is not running"),
    ],
)
async def test_refusals_are_the_upgrade_then_a_close_code_and_no_text(
    vm: str, tok: str, code: int, reason: str
) -> None:
    async with gateway(ScriptedScreens(speed=20.0)) as server, screen(server, vm, tok=_TOKENS[tok]()) as ws:
        assert await frames_until_closed(ws) == []
        assert (ws.close_code, ws.close_reason) == (code, reason)


async def test_a_vm_screen_server_asking_for_a_password_is_refused_with_4006() -> None:
    backend = ScriptedScreens(lambda: Script(security=b"\x02"), speed=20.0)
    async with gateway(backend) as server, screen(server, "my-vm") as ws:
        assert await frames_until_closed(ws) == []
        assert ws.close_code == 4006
        assert ws.close_reason == "the VM's screen server offers RFB security types 2; vmws answers only None (1)"


async def test_a_backend_without_screens_refuses_with_4006() -> None:
    class NoScreens(SimulatorBackend):
        open_screen = Backend.open_screen  # the default every backend inherits

    async with gateway(NoScreens(speed=20.0)) as server:
        async with screen(server, "my-vm") as ws:
            assert await frames_until_closed(ws) == []
            assert (ws.close_code, ws.close_reason) == (4006, "this server's backend has no graphical screens")
        async with screen(server, "db-1") as ws:  # VMNotRunning comes first
            assert await frames_until_closed(ws) == [] and ws.close_code == 4009


async def test_a_token_that_expires_while_viewing_closes_4001_without_text() -> None:
    # exp 9 s ago: within the 10 s leeway for a second more, then the session ends
    async with gateway(ScriptedScreens(speed=20.0)) as server, viewer(server, "my-vm", tok=token(ttl=-9)) as client:
        assert isinstance(client.transport, WebSocketTransport)
        ws = client.transport.ws
        assert all(isinstance(f, bytes) for f in await frames_until_closed(ws))
        assert (ws.close_code, ws.close_reason) == (4001, "token has expired")


async def test_a_browser_that_never_finishes_the_handshake_is_closed_and_the_vm_socket_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It upgrades, reads the version and says nothing more: pings alone must not keep a
    connection to the VM's screen server open."""
    from vmws.screen import handler

    monkeypatch.setattr(handler, "BROWSER_HANDSHAKE_TIMEOUT", 0.5)
    backend = ScriptedScreens(speed=20.0)
    async with gateway(backend) as server, screen(server, "my-vm") as ws:
        assert await ws.recv() == b"RFB 003.008\n"
        frames = await frames_until_closed(ws)
        assert frames == []
        assert ws.close_code == 1008 and ws.close_reason.startswith("RFB: handshake not completed")
        await backend.served()
