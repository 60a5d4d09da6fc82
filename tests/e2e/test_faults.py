"""Faults survived: a reboot during a console flood, a server restart under clients."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.client import SECRET, Client, client, running_server, token
from tests.e2e.test_console import login

pytestmark = pytest.mark.asyncio


async def test_reboot_during_a_flood_keeps_viewers_and_the_server_serving() -> None:
    async with (
        running_server() as server,
        client(server, "web-1", console=True) as viewer,
        client(server, "web-1") as monitor,
        client(server, "web-2") as bystander,
    ):
        await login(viewer, "web-1")
        await viewer.send("console_input", {"content": "yes still-flooding\n"})
        await viewer.read_console_until("still-flooding\r\nstill-flooding")
        assert (await monitor.command("restart", "reboot-mid-flood"))["success"] is True
        # The same socket sees the guest boot again and offer a login; nothing else broke.
        await viewer.read_console_until("web-1 login: ", timeout=30)
        await login(viewer, "web-1")
        await bystander.send("heartbeat", {"alive": 1})
        while (await bystander.recv("heartbeat"))["data"] != {"alive": 1}:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmws", "serve", "--port", str(port), "--speed", "20"],
        env={**os.environ, "VMWS_JWT_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert re.search(r"serving", proc.stdout.readline())
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


async def test_server_restart_under_clients_gives_1001_and_they_reconnect() -> None:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ws/vms/my-vm?token={token()}"
    first = _serve(port)
    try:
        async with connect(url) as ws:
            first_session = (await Client(ws).recv("connection"))["data"]["sessionId"]
            _stop(first)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1001
        second = _serve(port)
        try:
            # A client that reconnects as the spec says gets the full picture again.
            for _ in range(50):
                try:
                    async with connect(url) as ws:
                        c = Client(ws)
                        hello = await c.recv("connection")
                        assert hello["data"]["sessionId"] != first_session
                        assert (await c.recv("status"))["data"]["status"] == "running"
                        break
                except OSError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("could not reconnect to the restarted server")
        finally:
            _stop(second)
    finally:
        if first.poll() is None:
            _stop(first)


HANGING = """
[[vm]]
name = "stuck-1"
status = "running"

[[event]]
at = "0s"
vm = "stuck-1"
event = "hang-on-shutdown"
"""


async def test_a_forced_stop_cuts_in_on_a_hanging_graceful_stop(tmp_path: os.PathLike[str]) -> None:
    scenario = os.path.join(tmp_path, "hang.toml")
    with open(scenario, "w", encoding="utf-8") as fh:
        fh.write(HANGING)
    async with (
        running_server(speed=1, scenario=scenario) as server,
        client(server, "stuck-1") as a,
        client(server, "stuck-1") as b,
    ):
        await a.recv("status")
        await a.send("command", {"action": "stop", "requestId": "graceful"})
        await asyncio.sleep(0.5)  # the graceful stop is hanging now (its timeout is 30 s)
        async with asyncio.timeout(5):  # not queued behind the hanging stop
            forced = await b.command("stop", "forced", force=True)
        assert forced["success"] is True and forced["status"] == "stopped"
        graceful = (await a.recv("response", timeout=5))["data"]
        assert graceful["requestId"] == "graceful"  # answered too, not left hanging for 30 s


CRASHING = """
[[vm]]
name = "crashy-1"
status = "running"

[[vm]]
name = "steady-1"
status = "running"

[[event]]
at = "40s"
vm = "crashy-1"
event = "crash"
"""


async def test_a_crash_during_a_flood_gives_error_and_eof_and_others_keep_going(tmp_path: os.PathLike[str]) -> None:
    scenario = os.path.join(tmp_path, "crash.toml")
    with open(scenario, "w", encoding="utf-8") as fh:
        fh.write(CRASHING)
    async with (
        running_server(speed=20, scenario=scenario) as server,
        client(server, "crashy-1", console=True) as viewer,
        client(server, "crashy-1") as monitor,
        client(server, "steady-1") as bystander,
    ):
        await login(viewer, "crashy-1")
        await viewer.send("console_input", {"content": "yes crash-me\n"})
        eof = None
        async with asyncio.timeout(20):
            while eof is None:
                data = (await viewer.recv("console"))["data"]
                if data["eof"]:
                    eof = data
        assert eof["content"] == ""
        assert (await viewer.closed())[0] == 1000
        while (await monitor.recv("status"))["data"]["status"] != "error":
            pass
        assert (await bystander.command("restart", "still-serving"))["success"] is True
