"""The monitoring endpoint end to end: real server, real port, real websockets client."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client import client, running_server, token

pytestmark = pytest.mark.asyncio


async def test_connection_then_status_then_metrics() -> None:
    async with running_server() as server, client(server, "my-vm") as c:
        first = await c.recv()
        assert first["type"] == "connection"
        data = first["data"]
        assert data["status"] == "connected" and data["vm"] == "my-vm" and data["user"] == "alice"
        assert data["permissions"] == ["read", "control", "console"]
        assert data["heartbeatInterval"] == 30 and data["metricsInterval"] == 0.2
        assert len(data["sessionId"]) >= 16
        status = await c.recv()
        assert status["type"] == "status" and status["data"]["status"] == "running"
        assert status["data"]["lastStateChange"].endswith("Z") and status["data"]["uptime"] >= 0
        assert status["timestamp"].endswith("Z")
        first_metrics = (await c.recv())["data"]
        assert first_metrics["memory"]["used"] <= first_metrics["memory"]["total"]
        assert 0 <= first_metrics["cpu"]["utilization"] <= 100
        later = (await c.recv("metrics"))["data"]  # pushed again on the interval
        for group, key in [
            ("network", "rxBytes"),
            ("network", "txBytes"),
            ("disk", "readBytes"),
            ("disk", "writeBytes"),
        ]:
            assert later[group][key] >= first_metrics[group][key]


@pytest.mark.parametrize(
    ("vm", "tok", "code", "close_code"),
    [
        ("my-vm", "not-a-token", "AUTH_ERROR", 4001),
        ("my-vm", "", "AUTH_ERROR", 4001),
        ("my-vm", "EXPIRED", "AUTH_ERROR", 4001),
        ("my-vm", "CONSOLE_ONLY", "AUTH_ERROR", 4003),
        ("my-vm", "WEB_ONLY", "AUTH_ERROR", 4003),
        ("no-such-vm", "WEB_ONLY", "AUTH_ERROR", 4003),  # outside vms: existence not revealed
        ("no-such-vm", None, "VM_NOT_FOUND", 4004),
    ],
)
async def test_refusals_say_why_then_close(vm: str, tok: str | None, code: str, close_code: int) -> None:
    tokens = {
        "EXPIRED": token(ttl=-120),
        "CONSOLE_ONLY": token(["console"]),
        "WEB_ONLY": token(vms=["web-*"]),
    }
    async with running_server() as server, client(server, vm, tok=tokens.get(tok or "", tok)) as c:
        error = await c.recv()
        assert error["type"] == "error" and error["data"]["code"] == code
        assert error["data"]["message"]
        assert (await c.closed())[0] == close_code


async def test_every_action_and_both_watchers_see_the_effects() -> None:
    async with running_server() as server, client(server, "web-2") as a, client(server, "web-2") as b:
        for c in (a, b):
            await c.recv("status")
        expected = [
            ("suspend", "suspended"),
            ("resume", "running"),
            ("pause", "paused"),
            ("resume", "running"),
            ("restart", "running"),
            ("stop", "stopped"),
            ("start", "running"),
        ]
        for n, (action, status) in enumerate(expected):
            response = await a.command(action, f"cmd-{n}")
            assert response == {
                "requestId": f"cmd-{n}",
                "success": True,
                "message": f"Command '{action}' completed successfully",
                "action": action,
                "status": status,
            }
            # b watched it happen without asking (a restart may pass through other states).
            while (await b.recv("status"))["data"]["status"] != status:
                pass


async def test_commands_are_idempotent_where_harmless_and_fail_with_codes() -> None:
    async with running_server() as server, client(server, "my-vm") as running, client(server, "db-1") as stopped:
        assert (await running.command("start", "r1"))["success"] is True
        assert (await running.command("resume", "r2"))["success"] is True
        failed = await stopped.command("suspend", "r3")
        assert failed["success"] is False and failed["code"] == "VM_NOT_RUNNING" and failed["message"]
        failed = await stopped.command("restart", "r4")
        assert failed["code"] == "VM_NOT_RUNNING"
        assert (await stopped.command("stop", "r5"))["success"] is True


async def test_commands_run_one_at_a_time_in_arrival_order() -> None:
    async with running_server() as server, client(server, "web-3") as c:
        await c.recv("status")
        for n, action in enumerate(["stop", "start", "stop", "start"]):
            await c.send("command", {"action": action, "requestId": f"q{n}"})
        ids = [(await c.recv("response", timeout=30))["data"] for _ in range(4)]
        assert [r["requestId"] for r in ids] == ["q0", "q1", "q2", "q3"]
        assert all(r["success"] for r in ids)
        assert [r["status"] for r in ids] == ["stopped", "running", "stopped", "running"]


async def test_request_id_generated_when_absent() -> None:
    async with running_server() as server, client(server, "my-vm") as c:
        await c.send("command", {"action": "start"})
        response = (await c.recv("response"))["data"]
        assert response["success"] is True and response["requestId"].startswith("srv-")


async def test_command_without_control_is_refused_and_connection_stays() -> None:
    async with running_server() as server, client(server, "my-vm", tok=token(["read"])) as c:
        await c.recv("status")
        await c.send("command", {"action": "stop", "requestId": "nope"})
        error = (await c.recv("error"))["data"]
        assert error == {"code": "AUTH_ERROR", "message": error["message"], "requestId": "nope"}
        assert "control" in error["message"]
        await c.send("heartbeat", {"still": "here"})
        assert (await c.recv("heartbeat"))["data"] == {"still": "here"}
        # ... and the VM was not stopped.
        assert server.backend is not None and (await server.backend.get("my-vm")).status.value == "running"


async def test_malformed_input_gets_invalid_command_and_connection_stays() -> None:
    async with running_server() as server, client(server, "my-vm") as c:
        await c.recv("status")
        await c.ws.send("{not json")
        assert (await c.recv("error"))["data"]["code"] == "INVALID_COMMAND"
        await c.send("command", {"action": "fly", "requestId": "r7"}, malformed=True)
        error = (await c.recv("error"))["data"]
        assert error["code"] == "INVALID_COMMAND" and error["requestId"] == "r7" and "fly" in error["message"]
        await c.send("console_input", {"content": "ls\n"}, malformed=True)
        assert (await c.recv("error"))["data"]["code"] == "INVALID_COMMAND"
        await c.ws.send(b"\x00\x01")
        assert (await c.recv("error"))["data"]["code"] == "INVALID_COMMAND"
        assert (await c.command("start", "after"))["success"] is True


async def test_heartbeats_both_ways() -> None:
    async with running_server(heartbeat_interval=0.3) as server, client(server, "my-vm") as c:
        await c.send("heartbeat", {"t": 1})
        assert (await c.recv("heartbeat"))["data"] == {"t": 1}
        server_beat = await c.recv("heartbeat", timeout=3)
        assert server_beat["data"]["interval"] == 0.3
        # websockets answers the server's protocol pings, so the peer is kept.
        await asyncio.sleep(1.0)
        await c.send("heartbeat", {"t": 2})
        while (await c.recv("heartbeat"))["data"] != {"t": 2}:
            pass  # server heartbeats may come first


async def test_silent_peer_is_closed_after_two_intervals() -> None:
    async with running_server(heartbeat_interval=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"GET /ws/vms/my-vm?token={token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        received = b""
        async with asyncio.timeout(5):  # never answers pings: must be closed by the server
            while chunk := await reader.read(65536):
                received += chunk
                if b"\x88" in received and b"heartbeat timeout" in received:
                    break
        assert b"heartbeat timeout" in received
        assert (4010).to_bytes(2, "big") + b"heartbeat timeout" in received
        writer.close()


async def test_a_command_that_outlives_its_deadline_fails_with_unknown_error() -> None:
    async with running_server(speed=1, command_timeout=0.05) as server, client(server, "web-4") as c:
        await c.recv("status")
        response = await c.command("stop", "slow-stop")
        assert response["success"] is False and response["code"] == "UNKNOWN_ERROR"
        assert "timed out" in response["message"]
        # The stop itself still runs to its end.
        while (await c.recv("status"))["data"]["status"] != "stopped":
            pass
