"""The audit trail over a real server: one event per command, console session, refused
credential and ticket; ``GET /api/audit`` and its filters; the file and its SIGHUP reopen."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from websockets.asyncio.client import connect

from tests.e2e.client import SECRET, Client, client, running_server, token, ws_url
from vmws.app import Server

AUDITOR = token(["audit"], sub="auditor")


async def http(server: Server, method: str, path: str, *, tok: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    try:
        reply = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{server.port}{path}",
            method=method,
            headers=headers,
            body=None if body is None else orjson.dumps(body) if not isinstance(body, bytes) else body,
        )
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, orjson.loads(exc.response.body)
    text = reply.body
    return reply.code, orjson.loads(text) if reply.headers.get("Content-Type", "").startswith(
        "application/json"
    ) else text.decode()


async def audit(server: Server, **query: str) -> list[dict[str, Any]]:
    status, body = await http(server, "GET", "/api/audit?" + urlencode(query), tok=AUDITOR)
    assert status == 200, body
    events: list[dict[str, Any]] = body["events"]
    return events


async def until(probe: Any, timeout: float = 10.0) -> Any:
    """Poll ``probe()`` until it returns something truthy (events land as sockets close)."""
    async with asyncio.timeout(timeout):
        while not (found := await probe()):
            await asyncio.sleep(0.02)
    return found


@pytest.mark.asyncio
async def test_a_command_is_one_event_with_who_what_outcome_duration_and_node() -> None:
    async with running_server() as server, client(server, "my-vm", tok=token(sub="carol")) as c:
        assert (await c.command("restart", "audit-r1", force=True))["success"] is True
        stopped = await c.command("suspend", "audit-r2")  # my-vm restarted: running, so suspend works
        assert stopped["success"] is True
        events = await audit(server, vm="my-vm")
    commands = [e for e in events if e["kind"] == "command"]
    assert [(e["action"], e["requestId"], e["outcome"]) for e in commands] == [
        ("restart", "audit-r1", "success"),
        ("suspend", "audit-r2", "success"),
    ]
    first = commands[0]
    assert first["user"] == "carol" and first["vm"] == "my-vm" and first["force"] is True
    assert first["durationMs"] >= 0 and first["node"] == server.cluster.name != ""
    assert first["time"].endswith("Z")


@pytest.mark.asyncio
async def test_a_failed_command_is_audited_with_its_outcome() -> None:
    async with running_server() as server, client(server, "db-1") as c:
        assert (await c.command("suspend", "audit-f1"))["success"] is False
        (event,) = [e for e in await audit(server, vm="db-1") if e["kind"] == "command"]
    assert event["outcome"] == "failed" and event["action"] == "suspend" and event["force"] is False


@pytest.mark.asyncio
async def test_a_console_session_is_audited_when_opened_and_closed_with_bytes_each_way() -> None:
    async with running_server() as server:
        async with client(server, "web-1", console=True, tok=token(sub="dave")) as c:
            assert (await c.recv())["type"] == "connection"
            await c.send("console_input", {"content": "\n"})
            await c.read_console_until("login: ")
            opened = await audit(server, user="dave")
            assert [(e["kind"], e["state"]) for e in opened] == [("console_session", "opened")]
        closed = await until(lambda: _kinds(server, "console_session", state="closed"))
    (event,) = closed
    assert event["user"] == "dave" and event["vm"] == "web-1" and event["mode"] == "interactive"
    assert event["bytesIn"] > 0 and event["bytesOut"] > event["bytesIn"]
    assert event["session"] == opened[0]["session"]


async def _kinds(server: Server, kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in await audit(server) if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


@pytest.mark.asyncio
async def test_refused_credentials_are_audited_with_reason_address_and_sub_but_never_the_token() -> None:
    expired = token(sub="eve", ttl=-600)
    read_only = token(["read"], sub="frank")
    async with running_server() as server:
        async with connect(ws_url(server, "my-vm", tok=expired)) as ws:
            assert (await Client(ws).closed())[0] == 4001
        async with connect(ws_url(server, "web-1", console=True, tok=read_only)) as ws:
            assert (await Client(ws).closed())[0] == 4003
        status, _ = await http(server, "GET", "/api/vms", tok="not-a-token")
        assert status == 401
        refused = await _kinds(server, "auth_refused")
    assert [(e["reason"], e.get("sub"), e["where"]) for e in refused] == [
        ("expired", None, "monitor"),
        ("forbidden", "frank", "console"),
        ("invalid", None, "/api/vms"),
    ]
    assert all(e["remote"] == "127.0.0.1" and e["message"] for e in refused)
    text = orjson.dumps(refused).decode()
    assert expired not in text and read_only not in text and "not-a-token" not in text


@pytest.mark.asyncio
async def test_a_ticket_purchase_is_audited_and_no_event_of_any_kind_holds_a_credential(tmp_path: Path) -> None:
    log_file = tmp_path / "audit.jsonl"
    buyer = token(sub="grace")
    credentials = [buyer, AUDITOR]
    async with running_server(audit_log=str(log_file)) as server:
        status, body = await http(server, "POST", "/api/tickets", tok=buyer, body=b"")
        assert status == 201
        ticket = body["ticket"]
        credentials.append(ticket)
        async with client(server, "web-1", console=True, tok=ticket) as c:  # redeemed: a console session
            await c.recv("connection")
        async with client(server, "my-vm", tok=buyer) as c:
            await c.command("start", "audit-t1")
        async with connect(ws_url(server, "my-vm", tok=ticket)) as ws:  # used already: refused
            assert (await Client(ws).closed())[0] == 4001
        await until(lambda: _kinds(server, "console_session", state="closed"))
        events = await audit(server)
    kinds = {e["kind"] for e in events}
    assert kinds == {"ticket_issued", "console_session", "command", "auth_refused"}
    (bought,) = [e for e in events if e["kind"] == "ticket_issued"]
    assert bought["user"] == "grace" and bought["remote"] == "127.0.0.1"
    in_file = [orjson.loads(line) for line in log_file.read_bytes().splitlines()]
    assert in_file == events  # the file holds the same events (flushed at stop)
    for text in (orjson.dumps(events).decode(), log_file.read_text()):
        for credential in credentials:
            assert credential not in text
        assert "vmt_" not in text and "eyJ" not in text


@pytest.mark.asyncio
async def test_api_audit_filters_and_refuses_bad_queries_and_other_tokens() -> None:
    async with running_server(audit_ring_size=3) as server:
        for n in range(5):
            async with client(server, "my-vm", tok=token(sub=f"user{n}")) as c:
                await c.command("start", f"audit-q{n}")
        events = await audit(server)
        assert [e["requestId"] for e in events] == ["audit-q2", "audit-q3", "audit-q4"]  # the ring keeps 3
        assert [e["requestId"] for e in await audit(server, limit="1")] == ["audit-q4"]
        assert [e["user"] for e in await audit(server, user="user3")] == ["user3"]
        assert await audit(server, vm="db-1") == []
        assert [e["requestId"] for e in await audit(server, since=events[1]["time"])] == ["audit-q3", "audit-q4"]
        assert await audit(server, since="2999-01-01T00:00:00+00:00") == []
        for bad in ("since=yesterday", "since=2026-01-01T00:00:00", "limit=0", "limit=4", "limit=%C2%B2"):
            status, body = await http(server, "GET", f"/api/audit?{bad}", tok=AUDITOR)
            assert status == 400 and body["error"]["code"] == "INVALID_COMMAND", bad
        status, body = await http(server, "GET", "/api/audit", tok=token())  # read, control, console
        assert status == 403 and "'audit'" in body["error"]["message"]
        status, _ = await http(server, "GET", "/api/audit")
        assert status == 401


def test_sighup_reopens_the_audit_log_so_rotation_loses_nothing(tmp_path: Path) -> None:
    """A real ``vmws serve``: rename the file (as logrotate does), SIGHUP, and the next
    events land in a new file at the configured path."""
    log_file = tmp_path / "audit.jsonl"
    rotated = tmp_path / "audit.jsonl.1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMWS_")}
    env["VMWS_JWT_SECRET"] = SECRET
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmws", "serve", "--port", "0", "--audit-log", str(log_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split()[0])

        def buy(sub: str) -> None:
            import urllib.request

            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/tickets",
                method="POST",
                data=b"",
                headers={"Authorization": f"Bearer {token(sub=sub)}"},
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 201

        def users(path: Path) -> list[str]:
            if not path.exists():
                return []
            return [orjson.loads(line)["user"] for line in path.read_bytes().splitlines()]

        def wait_for(path: Path, expected: list[str]) -> None:
            deadline = time.monotonic() + 15  # events are fsync'd within a second
            while users(path) != expected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert users(path) == expected

        buy("before")
        wait_for(log_file, ["before"])
        log_file.rename(rotated)
        buy("between")  # written to the renamed file: the server still holds it
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while not log_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        buy("after")
        wait_for(log_file, ["after"])
        assert users(rotated) == ["before", "between"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.asyncio
async def test_a_command_refused_for_lack_of_control_is_audited_as_forbidden() -> None:
    async with running_server() as server, client(server, "my-vm", tok=token(["read"], sub="ivan")) as c:
        await c.send("command", {"action": "stop", "requestId": "audit-x1"})
        assert (await c.recv("error"))["data"]["code"] == "AUTH_ERROR"
        (event,) = await _kinds(server, "command")
    assert (event["user"], event["action"], event["requestId"], event["outcome"]) == (
        "ivan",
        "stop",
        "audit-x1",
        "forbidden",
    )
