"""The simulator's screens through the gateway, end to end: a real server, the
``websockets`` client offering ``binary``, RFB over it (tests/rfb_client.py) and the
simulator's text reader over the framebuffer (compare text, not pixels)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import websockets

from simulator.screen.font import read_text
from tests.e2e.client import client as monitor_client
from tests.rfb_client import ENCODING_RAW, RFBClient, WebSocketTransport
from tests.screen.gateway import frames_until_closed, gateway, screen, viewer, watch_token
from vmws.backend import Action

pytestmark = pytest.mark.asyncio


async def picture(client: RFBClient) -> list[str]:
    """The whole screen as text after a full update."""
    await client.request_update(incremental=False)
    await client.read_update()
    return [line.rstrip() for line in read_text(client.framebuffer, client.width, client.height)]


def last_line(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line), "")


async def shows(client: RFBClient, wanted: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
    """The screen's text once ``wanted`` holds for it (full updates asked for until then)."""
    async with asyncio.timeout(timeout):
        while not wanted(lines := await picture(client)):
            await asyncio.sleep(0.02)
    return lines


async def test_a_full_framebuffer_update_of_the_right_size() -> None:
    async with gateway() as server, viewer(server, "my-vm") as client:
        assert (client.width, client.height) == (640, 400) and client.name
        await client.request_update(incremental=False)
        rects = await client.read_update()
        assert sum(r.width * r.height for r in rects if r.encoding == ENCODING_RAW) == 640 * 400
        assert not client.is_blank()
        assert last_line([line.rstrip() for line in read_text(client.framebuffer, 640, 400)]) == "my-vm login:"


async def test_typing_admin_admin_shows_the_shell_prompt_and_a_key_changes_the_screen() -> None:
    async with gateway() as server, viewer(server, "my-vm") as client:
        before = await picture(client)
        await client.type_text("admin\n")
        after = await shows(client, lambda lines: last_line(lines) == "Password:")
        assert after != before
        await client.type_text("admin\n")
        await shows(client, lambda lines: last_line(lines) == "admin@my-vm:~$")


async def test_two_viewers_share_one_screen() -> None:
    async with gateway() as server, viewer(server, "web-1") as a, viewer(server, "web-1") as b:
        await a.type_text("adm")
        await shows(b, lambda lines: last_line(lines) == "web-1 login: adm")
        await b.type_text("in")
        await shows(a, lambda lines: last_line(lines) == "web-1 login: admin")


@pytest.mark.parametrize("how", ["query", "token"])
async def test_a_view_only_viewer_sees_but_its_keys_never_arrive(how: str) -> None:
    kwargs = {"mode": "watch"} if how == "query" else {"tok": watch_token()}
    async with gateway() as server, viewer(server, "web-2", **kwargs) as watcher, viewer(server, "web-2") as typist:
        await watcher.type_text("zzz")
        await watcher.ctrl_alt_del()
        await picture(watcher)  # the gateway has handled the keys: the update request came after them
        await typist.type_text("y")
        lines = await shows(watcher, lambda lines: last_line(lines) == "web-2 login: y")
        assert "z" not in last_line(lines)


async def test_a_vm_that_stops_closes_its_screen_with_1000_after_the_last_update() -> None:
    async with gateway() as server, viewer(server, "web-3") as client:
        await picture(client)
        await client.request_update()
        await server.backend.perform("web-3", Action.STOP, force=True)
        assert isinstance(client.transport, WebSocketTransport)
        ws = client.transport.ws
        frames = await frames_until_closed(ws)
        assert all(isinstance(f, bytes) for f in frames)
        assert (ws.close_code, ws.close_reason) == (1000, "the VM's screen closed")


async def test_a_paused_vm_is_accepted_and_its_screen_frozen() -> None:
    async with gateway() as server, viewer(server, "batch-1") as client:
        before = await picture(client)
        assert last_line(before)
        await client.type_text("admin\n")
        assert await picture(client) == before


async def test_ctrl_alt_del_reboots_the_vm_and_its_status_socket_sees_it() -> None:
    async with gateway() as server, monitor_client(server, "web-4") as monitor, viewer(server, "web-4") as client:
        first = (await monitor.recv("status"))["data"]
        await client.ctrl_alt_del()
        async with asyncio.timeout(15):
            while True:
                status = (await monitor.recv("status"))["data"]
                if status["lastStateChange"] != first["lastStateChange"]:
                    break
        assert status["status"] == "running"  # rebooted: a new state change, still running
        await shows(client, lambda lines: last_line(lines) == "web-4 login:")  # booted again, at the login


async def test_no_text_frame_ever_and_protocol_pings_keep_a_quiet_viewer() -> None:
    async with gateway(heartbeat_interval=0.2) as server, screen(server, "my-vm") as ws:
        client = await RFBClient.connect(WebSocketTransport(ws))
        await picture(client)
        await asyncio.sleep(1.0)  # five heartbeat intervals: pings answered by the client library
        await picture(client)  # still open; no JSON heartbeat came in between (a str would fail)
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
