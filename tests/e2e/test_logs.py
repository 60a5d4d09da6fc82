"""What a real ``vmws serve`` writes to its log under attack, in both log formats:
no credential however it is smuggled in, and no forged line, escape sequence or
unbounded line from untrusted strings (URL path, ``sub``, ``requestId``, VM names)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from websockets.asyncio.client import connect

from vmws.auth import mint_token

SECRET = "logs-e2e-secret-that-is-at-least-32-bytes"
HOSTILE_SUB = "eve\x1b]0;pwned\x07\r\n2026-01-01 00:00:00,000 INFO vmws: FORGED sub\x9b31m\x7f\u2028x"
HOSTILE_VM = "ghost\n2026-01-01 00:00:00,000 INFO vmws: FORGED vm\x1b[2J\r"
HOSTILE_REQUEST_ID = "r1\r\n2026-01-01 00:00:00,000 INFO vmws: FORGED id\x1b[31m"
HUGE_VM = "a" * 60_000
# What may appear in a log file: printable text, newlines ending records, and (text
# format) tabs nowhere either.
_RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


@contextlib.contextmanager
def vmws_serve(log_format: str, log: Path) -> Iterator[str]:
    """``vmws serve`` with its stderr in ``log``; yields its base URL (http://…)."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmws", "serve", "--port", "0", "--log-format", log_format],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "VMWS_JWT_SECRET": SECRET},
        )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match, log.read_text(errors="replace")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        if proc.stdout:
            proc.stdout.close()


def tok(sub: str = "alice", perms: tuple[str, ...] = ("read", "control", "console")) -> str:
    return mint_token(SECRET, sub=sub, permissions=list(perms), now=time.time(), ttl=600)


async def http(url: str, **kwargs: object) -> tuple[int, bytes]:
    try:
        response = await AsyncHTTPClient().fetch(url, **kwargs)  # type: ignore[arg-type]
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    return response.code, response.body


async def ws_messages(url: str, send: dict[str, object] | None = None, until: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    """Everything the server sends on ``url`` until it closes (or ``until`` arrives)."""
    seen: list[dict] = []  # type: ignore[type-arg]
    with contextlib.suppress(Exception):  # refusals may come as HTTP errors or closes
        async with connect(url, max_size=None) as ws:
            if send is not None:
                await ws.send(orjson.dumps(send).decode())
            async with asyncio.timeout(10):
                async for raw in ws:
                    seen.append(orjson.loads(raw))
                    if until is None or seen[-1]["type"] == until:
                        if until is not None:
                            break
    return seen


async def ticket(base: str, token: str) -> str:
    code, body = await http(
        f"{base}/api/tickets", method="POST", body=b"", headers={"Authorization": f"Bearer {token}"}
    )
    assert code == 201
    return str(json.loads(body)["ticket"])


def wait_for(log: Path, needle: str) -> None:
    """Wait until the server has logged ``needle`` (records are written as they happen)."""
    deadline = time.monotonic() + 10
    while needle not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{needle!r} never logged"
        time.sleep(0.05)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_smuggled_tokens_and_tickets_never_reach_the_log(log_format: str, tmp_path: Path) -> None:
    log = tmp_path / "vmws.log"
    jwt = tok()
    with vmws_serve(log_format, log) as base:
        ws = base.replace("http", "ws", 1)

        async def attack() -> list[str]:
            # Tornado percent-decodes argument names: %74oken is token, and it authenticates.
            code, _ = await http(f"{base}/api/vms?%74oken={jwt}")
            assert code == 200
            for name in ("ToKeN", "%54OKEN", "access_token", "ticket"):
                await http(f"{base}/api/vms?{name}={jwt}")
            first = await ws_messages(f"{ws}/ws/vms/my-vm?%74oken={jwt}", until="connection")
            assert first and first[0]["type"] == "connection"
            # An undecodable byte after a valid ticket: Tornado's error quotes the raw value.
            tickets = [await ticket(base, jwt) for _ in range(2)]
            await http(f"{base}/api/vms?token={tickets[0]}%FF")
            await ws_messages(f"{ws}/ws/vms/my-vm?token={tickets[1]}%FF")
            await http(f"{base}/api/vms?token=%FF{jwt}")
            await http(f"{base}/healthz?done=1")
            return tickets

        tickets = asyncio.run(attack())
        wait_for(log, "/healthz?done=1")
    text = log.read_text(errors="replace")
    assert "REDACTED" in text
    for secret in (jwt, jwt.split(".")[2], *tickets, *(t[len("vmt_") :] for t in tickets)):
        assert secret not in text, (secret, text[-3000:])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_untrusted_strings_are_escaped_and_cut_in_the_log(log_format: str, tmp_path: Path) -> None:
    log = tmp_path / "vmws.log"
    with vmws_serve(log_format, log) as base:
        ws = base.replace("http", "ws", 1)

        async def attack() -> None:
            # sub: logged when the socket opens; requestId: logged with the command's outcome.
            await ws_messages(
                f"{ws}/ws/vms/my-vm?token={tok(HOSTILE_SUB)}",
                send={"type": "command", "data": {"action": "start", "requestId": HOSTILE_REQUEST_ID}},
                until="response",
            )
            # A VM name with a newline and escapes: refused with VM_NOT_FOUND, logged.
            await ws_messages(f"{ws}/ws/vms/{quote(HOSTILE_VM, safe='')}?token={tok()}")
            await http(f"{base}/{quote(HOSTILE_VM, safe='')}")
            # 60 KB of name, unauthenticated.
            await ws_messages(f"{ws}/ws/vms/{HUGE_VM}")
            await http(f"{base}/healthz?done=1")

        asyncio.run(attack())
        wait_for(log, "/healthz?done=1")
    raw = log.read_bytes()
    text = raw.decode("utf-8")  # a lone surrogate or a broken byte would fail here
    assert not _RAW_CONTROL.search(text), repr(_RAW_CONTROL.search(text))
    lines = text.splitlines()
    for line in lines:
        if log_format == "json":
            json.loads(line)  # one record per line
        else:
            assert _TEXT_RECORD.match(line) or line.startswith("    "), line[:300]
        assert len(line) < 6000, f"a line of {len(line)} chars"
    assert len(raw) < 32 * 1024, f"{len(raw)} bytes of log"  # was over 118 KiB for the 60 KB name
    # Logged escaped (not dropped): each hostile string is visible for what it is.
    shown = text if log_format == "text" else "\n".join(json.loads(line)["message"] for line in lines)
    for fragment in (
        "eve\\x1b]0;pwned\\x07\\x0d\\x0a2026",
        "ghost\\x0a2026",
        "r1\\x0d\\x0a2026",
        "\\x9b31m\\x7f\\u2028x",
    ):
        assert fragment in shown, (fragment, shown[-3000:])


def test_the_json_format_carries_vm_user_session_and_request_id_as_fields_escaped_and_cut(tmp_path: Path) -> None:
    log = tmp_path / "vmws.log"
    with vmws_serve("json", log) as base:
        ws = base.replace("http", "ws", 1)

        async def visit() -> str:
            seen = await ws_messages(
                f"{ws}/ws/vms/my-vm?token={tok(HOSTILE_SUB)}",
                send={"type": "command", "data": {"action": "start", "requestId": HOSTILE_REQUEST_ID}},
                until="response",
            )
            await ws_messages(f"{ws}/ws/vms/{quote(HOSTILE_VM, safe='')}?token={tok()}")
            await ws_messages(f"{ws}/ws/vms/{HUGE_VM}")
            await http(f"{base}/healthz?done=1")
            return str(seen[0]["data"]["sessionId"])

        session = asyncio.run(visit())
        wait_for(log, "/healthz?done=1")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    sub = "eve\\x1b]0;pwned\\x07\\x0d\\x0a2026-01-01 00:00:00,000 INFO vmws: FORGED sub\\x9b31m\\x7f\\u2028x"
    opened = next(r for r in records if r["message"].startswith("monitor open vm=my-vm"))
    assert (opened["vm"], opened["user"], opened["session"]) == ("my-vm", sub, session)
    assert "requestId" not in opened
    # The text stays readable as before: the same values are in the message.
    assert f"user={sub} session={session}" in opened["message"]
    command = next(r for r in records if r["message"].startswith("command start on my-vm"))
    assert command["requestId"] == "r1\\x0d\\x0a2026-01-01 00:00:00,000 INFO vmws: FORGED id\\x1b[31m"
    assert (command["vm"], command["user"], command["session"]) == ("my-vm", sub, session)
    closed = next(r for r in records if r["message"].startswith("monitor closed vm=my-vm"))
    assert (closed["vm"], closed["session"]) == ("my-vm", session)
    refused = [r for r in records if r["message"].startswith("monitor refused")]
    assert refused[0]["vm"] == "ghost\\x0a2026-01-01 00:00:00,000 INFO vmws: FORGED vm\\x1b[2J\\x0d"
    assert refused[0]["user"] == "alice" and refused[0]["session"]
    huge = refused[1]["vm"]
    assert huge.startswith("a" * 300) and huge.endswith("…(+59700 chars)") and refused[1]["user"] == "-"
