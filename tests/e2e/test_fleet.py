"""/ws/fleet end to end: a real server, the websockets client, every message schema-checked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import Client, client, running_server, token
from tests.e2e.test_http import fetch
from vmws.app import Server
from vmws.fleet import FRAME_BYTES

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def fleet_client(server: Server, tok: str | None = None, **query: str) -> AsyncIterator[Client]:
    params = urlencode({"token": token(["read", "control"]) if tok is None else tok, **query})
    async with connect(f"ws://127.0.0.1:{server.port}/ws/fleet?{params}", max_size=None) as ws:
        yield Client(ws)


async def snapshot(c: Client) -> tuple[dict[str, Any], list[dict[str, Any]], list[int]]:
    """The connection message, then every VM of the snapshot and each frame's size in bytes."""
    connection = await c.recv()
    assert connection["type"] == "connection", connection
    vms: list[dict[str, Any]] = []
    sizes: list[int] = []
    while True:
        frame = await c.ws.recv()
        assert isinstance(frame, str)
        message = c._checked(frame)
        assert message["type"] == "fleet_snapshot", message["type"]
        sizes.append(len(frame.encode()))
        vms += message["data"]["vms"]
        if message["data"]["complete"]:
            return connection, vms, sizes


async def api_names(server: Server) -> list[str]:
    _, _, body = await fetch(f"http://127.0.0.1:{server.port}/api/vms?token={token(['read'])}")
    return sorted(vm["name"] for vm in body["vms"])  # type: ignore[index]


async def test_connection_then_the_whole_snapshot_then_status_changes_as_they_happen() -> None:
    async with running_server(fleet_interval=60) as server, fleet_client(server) as fleet:
        connection, vms, _ = await snapshot(fleet)
        assert connection["data"]["vm"] == "*" and connection["data"]["fleetInterval"] == 60
        assert connection["data"]["filter"] is None and connection["data"]["user"] == "alice"
        assert [vm["name"] for vm in vms] == await api_names(server)
        by_name = {vm["name"]: vm for vm in vms}
        assert by_name["my-vm"]["status"] == "running" and by_name["db-1"]["status"] == "stopped"
        # Sampled from start-up: a running VM's snapshot entry has its CPU and memory.
        assert 0 <= by_name["my-vm"]["cpu"]["utilization"] <= 100
        assert by_name["my-vm"]["memory"]["used"] <= by_name["my-vm"]["memory"]["total"]
        async with client(server, "web-2") as monitor:
            await monitor.recv("status")
            assert (await monitor.command("pause", "p1"))["success"]
            change = await fleet.recv("fleet_status")
            assert change["data"]["name"] == "web-2" and change["data"]["status"] == "paused"
            assert (await monitor.command("resume", "r1"))["success"]
            change = await fleet.recv("fleet_status")
            assert change["data"]["name"] == "web-2" and change["data"]["status"] == "running"


async def test_summaries_every_interval_name_every_vm_with_cpu_and_memory() -> None:
    async with running_server(fleet_interval=0.2) as server, fleet_client(server) as a, fleet_client(server) as b:
        _, vms, _ = await snapshot(a)
        await snapshot(b)
        names = [vm["name"] for vm in vms]
        last_a = ""
        for _ in range(2):  # two intervals in a row, each complete
            summary: list[dict[str, Any]] = []
            while True:
                message = await a.recv("fleet_summary")
                summary += message["data"]["vms"]
                last_a = message["timestamp"]
                if message["data"]["complete"]:
                    break
            assert [vm["name"] for vm in summary] == names
            running = [vm for vm in summary if vm["status"] == "running"]
            assert running and all(0 <= vm["cpu"]["utilization"] <= 100 for vm in running)
            assert all(vm["memory"]["used"] <= vm["memory"]["total"] for vm in running)
        # Two sockets with the same filter get the same summary at the same instant.
        while (from_b := await b.recv("fleet_summary"))["timestamp"] <= last_a:
            pass
        assert await a.recv("fleet_summary") == from_b


async def test_the_tokens_vms_and_the_query_glob_filter_every_message() -> None:
    tok = token(["read", "control"], vms=["web-*", "=my-vm"])
    async with (
        running_server(fleet_interval=0.2) as server,
        fleet_client(server, tok, vms="*-[12]") as narrow,
        fleet_client(server, tok) as scoped,
    ):
        connection, vms, _ = await snapshot(narrow)
        assert connection["data"]["filter"] == "*-[12]"
        assert [vm["name"] for vm in vms] == ["web-1", "web-2"]  # db-1, my-vm: outside one or the other
        _, vms, _ = await snapshot(scoped)
        assert [vm["name"] for vm in vms] == ["my-vm", *(f"web-{n}" for n in range(1, 6))]
        summary = await narrow.recv("fleet_summary")
        assert {vm["name"] for vm in summary["data"]["vms"]} == {"web-1", "web-2"}
        async with client(server, "web-3") as web3, client(server, "web-1") as web1:
            await web3.recv("status")
            await web1.recv("status")
            assert (await web3.command("pause", "p3"))["success"]
            assert (await scoped.recv("fleet_status"))["data"]["name"] == "web-3"
            assert (await web1.command("pause", "p1"))["success"]
            # narrow saw nothing of web-3: the first change it gets is web-1's.
            while True:
                message = await narrow.recv()
                assert message["type"] in ("fleet_summary", "fleet_status", "heartbeat")
                for vm in message["data"]["vms"] if message["type"] == "fleet_summary" else [message["data"]]:
                    assert vm["name"] in ("web-1", "web-2"), vm
                if message["type"] == "fleet_status":
                    assert message["data"]["name"] == "web-1" and message["data"]["status"] == "paused"
                    break


@pytest.mark.parametrize(
    ("tok", "query", "code", "close_code"),
    [
        ("bad", {}, "AUTH_ERROR", 4001),
        ("CONSOLE", {}, "AUTH_ERROR", 4003),
        (None, {"vms": "x" * 256}, "INVALID_COMMAND", 1008),
        (None, {"vms": ""}, "INVALID_COMMAND", 1008),
        (None, {"vms": "*a" * 17}, "INVALID_COMMAND", 1008),  # too many '*': slow to match
    ],
)
async def test_refusals_say_why_then_close(tok: str | None, query: dict[str, str], code: str, close_code: int) -> None:
    chosen = token(["console"]) if tok == "CONSOLE" else tok
    async with running_server() as server, fleet_client(server, chosen, **query) as c:
        error = await c.recv()
        assert error["type"] == "error" and error["data"]["code"] == code and error["data"]["message"]
        assert (await c.closed())[0] == close_code


async def test_commands_are_refused_on_the_fleet_socket() -> None:
    async with running_server(fleet_interval=60) as server, fleet_client(server) as c:
        await snapshot(c)
        await c.send("command", {"action": "stop"}, malformed=True)
        error = await c.recv("error")
        assert error["data"]["message"] == "'command' messages are not accepted on the fleet endpoint"


async def test_ten_thousand_vms_arrive_whole_in_bounded_frames(tmp_path: Path) -> None:
    scenario = tmp_path / "fleet.toml"
    scenario.write_text('[[vm]]\nname = "vm-{00001..10000}"\nmemory_mib = 1024\nvcpus = 1\n', encoding="utf-8")
    async with running_server(scenario=str(scenario), fleet_interval=60) as server, fleet_client(server) as c:
        _, vms, sizes = await snapshot(c)
        names = [vm["name"] for vm in vms]
        assert names == [f"vm-{n:05d}" for n in range(1, 10_001)]  # each once, in order
        assert all(vm["status"] == "running" and "cpu" in vm for vm in vms)
        assert len(sizes) > 10 and max(sizes) <= FRAME_BYTES


async def test_history_rest_serves_samples_since_with_the_metrics_shape() -> None:
    async with running_server(fleet_interval=0.1) as server, client(server, "my-vm") as watcher:
        base = f"http://127.0.0.1:{server.port}/api/vms"
        for _ in range(4):
            await watcher.recv("metrics")  # watched: sampled at the metrics interval too
        code, _, body = await fetch(f"{base}/web-1/metrics?since=600&token={token(['read'])}")
        assert code == 200 and isinstance(body, list) and len(body) >= 2
        from tests.schema.protocol_schema import problems

        for item in body:
            timestamp = item.pop("timestamp")
            assert timestamp.endswith("Z") and not problems(item, "MetricsData"), item
        code, _, recent = await fetch(
            f"{base}/my-vm/metrics?since=0.5", headers={"Authorization": f"Bearer {token(['read'])}"}
        )
        assert code == 200 and 1 <= len(recent) <= 10  # type: ignore[arg-type]
        counters = [s["network"]["rxBytes"] for s in recent]  # type: ignore[union-attr]
        assert counters == sorted(counters)


@pytest.mark.parametrize(
    ("path", "tok", "status", "code"),
    [
        ("/api/vms/my-vm/metrics", "bad", 401, "AUTH_ERROR"),
        ("/api/vms/my-vm/metrics", "CONSOLE", 403, "AUTH_ERROR"),
        ("/api/vms/no-such-vm/metrics", "WEB", 403, "AUTH_ERROR"),  # outside vms: existence not revealed
        ("/api/vms/no-such-vm/metrics", None, 404, "VM_NOT_FOUND"),
        ("/api/vms/my-vm/metrics?since=-5", None, 400, "INVALID_COMMAND"),
        ("/api/vms/my-vm/metrics?since=1e9", None, 400, "INVALID_COMMAND"),
        ("/api/vms/my-vm/metrics?since=nan", None, 400, "INVALID_COMMAND"),
    ],
)
async def test_history_rest_refusals(path: str, tok: str | None, status: int, code: str) -> None:
    chosen = {"CONSOLE": token(["console"]), "WEB": token(["read"], vms=["web-*"]), None: token(["read"])}.get(tok, tok)
    async with running_server() as server:
        got, _, body = await fetch(
            f"http://127.0.0.1:{server.port}{path}", headers={"Authorization": f"Bearer {chosen}"}
        )
        assert got == status and body["error"]["code"] == code and body["error"]["message"]  # type: ignore[index]
