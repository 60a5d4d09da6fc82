"""End to end: a scripted scenario through a real ``vmws serve --scenario`` process and
real WebSocket clients. web-1 crashes on schedule (watchers see ``error``, console
viewers get eof); web-2 fails its next command (``success: false`` with the message)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from simulator.bench import SECRET, serving
from vmws.auth import mint_token

SPEED = 30.0
CRASH_AT = 80.0  # simulated seconds: 2.7 s of real time, enough to connect first
SCENARIO = f"""
[[vm]]
name = "web-{{1..2}}"

[[event]]
at = "{CRASH_AT}s"
vm = "web-1"
event = "crash"

[[event]]
at = "0s"
vm = "web-2"
event = "fail-next-command"
message = "internal error: qemu unexpectedly closed the monitor"
"""


async def receive(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            if message["type"] == kind:
                return message


def command(action: str, request_id: str) -> str:
    body = {"type": "command", "timestamp": "2026-01-01T00:00:00Z", "data": {"action": action, "requestId": request_id}}
    return orjson.dumps(body).decode()


@pytest.mark.asyncio
async def test_a_scripted_crash_and_a_failing_command_reach_real_clients(tmp_path: Path) -> None:
    path = tmp_path / "crash.toml"
    path.write_text(SCENARIO)
    tok = mint_token(SECRET, sub="tester", permissions=["read", "control", "console"], now=time.time(), ttl=600)
    with serving(path, "--speed", str(SPEED), "--metrics-interval", "0.5") as served:
        started = time.monotonic()
        base = f"ws://127.0.0.1:{served.port}/ws/vms"
        async with (
            connect(f"{base}/web-1?token={tok}") as watcher,
            connect(f"{base}/web-1/console?token={tok}") as viewer,
            connect(f"{base}/web-2?token={tok}") as control,
        ):
            assert (await receive(watcher, "status"))["data"]["status"] == "running"
            assert time.monotonic() - started < CRASH_AT / SPEED, "too slow to connect before the crash"
            assert "web-1 login: " in (await receive(viewer, "console"))["data"]["content"]

            await control.send(command("pause", "r1"))
            response = (await receive(control, "response"))["data"]
            assert (response["requestId"], response["success"]) == ("r1", False)
            assert response["message"] == "internal error: qemu unexpectedly closed the monitor"

            crashed = await receive(watcher, "status", timeout=CRASH_AT / SPEED + 10)
            assert crashed["data"]["status"] == "error" and crashed["data"]["uptime"] == 0
            output = ""
            async with asyncio.timeout(10):
                while True:
                    message = await receive(viewer, "console")
                    output += message["data"]["content"]
                    if message["data"]["eof"]:
                        break
            assert "Kernel panic - not syncing" in output
            await viewer.wait_closed()

            await control.send(command("pause", "r2"))
            again = (await receive(control, "response"))["data"]
            assert (again["requestId"], again["success"], again["status"]) == ("r2", True, "paused")
