"""Hostile handshakes, query strings and frames over real sockets (issue 10: items 2, 6, 7, 10, 12, 13).

Every refusal must reach the client as an ``error`` and a close frame (never a TCP
drop, 1006), free whatever the connection took (its per-user slot, its place in the
hub), log no ERROR and no traceback, and never quote raw input in the close reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jwt
import orjson
import pytest
import websockets
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.e2e.client import SECRET, Client, client, running_server, token, ws_url
from vmws import protocol
from vmws.app import Server
from vmws.backend import Capability
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config
from vmws.console_channel import ConsoleChannel
from vmws.handlers import _VMSocket

pytestmark = pytest.mark.asyncio


# Helpers


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("vmws", "tornado"))]


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in server_records(caplog) if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def assert_nothing_held(server: Server, sub: str) -> None:
    """No connection slot, no registered peer, no watcher and no viewer left behind."""
    assert server.hub.user_connections.count(sub) == 0
    assert not server.hub.peers
    assert not any(server.hub._watchers.values())
    assert not any(c.viewers for c in server.hub._consoles.values())


async def refusal(url: str) -> tuple[dict[str, Any] | None, int | None, str | None]:
    """(first message or None, close code, close reason) of a connection the server refuses."""
    async with websockets.connect(url, max_size=None) as ws:
        c = Client(ws)
        first: dict[str, Any] | None = None
        with contextlib.suppress(websockets.ConnectionClosed):
            first = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        code, reason = await c.closed()
        return first, code, reason


async def settle(server: Server, sub: str) -> None:
    """Wait (bounded) for the server to run on_close of the connections just refused."""
    for _ in range(200):
        if server.hub.user_connections.count(sub) == 0 and not server.hub.peers:
            return
        await asyncio.sleep(0.01)


async def http(url: str, method: str = "GET", **kwargs: Any) -> tuple[int, bytes]:
    try:
        response = await AsyncHTTPClient().fetch(url, method=method, raise_error=True, **kwargs)
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    return response.code, response.body or b""


async def raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"101", head
    return reader, writer


def frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    header = (
        struct.pack("!BB", 0x80 | opcode, mask_bit | n)
        if n < 126
        else struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, n)
    )
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


async def close_frame(reader: asyncio.StreamReader) -> tuple[int, str] | None:
    """The server's close frame (code, reason), skipping data frames; None if TCP just dropped."""
    try:
        async with asyncio.timeout(10):
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None


def forged_token(**claims: Any) -> str:
    body = {"sub": "mallory", "exp": int(time.time()) + 600, "permissions": ["read", "control", "console"]}
    body.update(claims)
    return jwt.encode(body, SECRET, algorithm="HS256")


# Item 2: close reasons and what open() took


@pytest.mark.parametrize(("perms", "vms", "code"), [(["read"], None, 4004), (["read"], ["web-*"], 4003)])
async def test_refusals_quoting_long_unicode_names_close_cleanly_and_free_the_slot(
    perms: list[str],
    vms: list[str] | None,
    code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    name = "é" * 60  # 120 bytes: quoted in a 120-character reason it made Tornado raise
    async with running_server() as server:
        tok = token(perms, sub="mallory", vms=vms)
        for _ in range(70):  # more than --max-connections-per-user (64)
            first, close, reason = await refusal(ws_url(server, name, tok=tok))
            assert first is not None and first["type"] == "error"
            assert close == code
            assert reason is not None and len(reason.encode()) <= 123 and "é" not in reason
        await settle(server, "mallory")
        assert_nothing_held(server, "mallory")
        # The same user still gets in.
        async with client(server, "my-vm", tok=token(["read"], sub="mallory")) as c:
            assert (await c.recv())["type"] == "connection"
    assert_no_error_logged(caplog)


async def test_a_sub_with_a_lone_surrogate_is_refused_and_leaves_no_peer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_server() as server:
        for console in (False, True):
            first, close, reason = await refusal(
                ws_url(server, "my-vm", console=console, tok=forged_token(sub="x\ud800"))
            )
            assert first is not None and first["data"]["code"] == "AUTH_ERROR" and close == 4001
        await settle(server, "x\ud800")
        assert_nothing_held(server, "x\ud800")
    assert_no_error_logged(caplog)


def _raise(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def _after(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real`` runs (takes what it takes), then the step fails."""
    if asyncio.iscoroutinefunction(real):

        async def run_then_fail_async(*args: Any, **kwargs: Any) -> Any:
            await real(*args, **kwargs)
            raise RuntimeError("injected failure")

        return run_then_fail_async

    def run_then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise RuntimeError("injected failure")

    return run_then_fail


# Each step of open(), how to make it fail after (or instead of) doing its work, and the
# endpoints that take that step.
BOTH, MONITOR, CONSOLE = (False, True), (False,), (True,)
STEPS: dict[str, tuple[Callable[[Server, pytest.MonkeyPatch], None], tuple[bool, ...]]] = {
    "authenticate": (lambda s, m: m.setattr(s.auth, "authenticate", _raise), BOTH),
    "acquire slot": (lambda s, m: m.setattr(s.hub.user_connections, "acquire", _raise), BOTH),
    "backend check": (lambda s, m: m.setattr(s.hub.backend, "get", _raise), MONITOR),
    "open console": (lambda s, m: m.setattr(s.hub, "console", _raise), CONSOLE),
    "register": (lambda s, m: m.setattr(s.hub, "register", _after(s.hub.register)), BOTH),
    "schedule expiry": (
        lambda s, m: m.setattr(_VMSocket, "_schedule_expiry", _after(_VMSocket._schedule_expiry)),
        BOTH,
    ),
    "connection message": (lambda s, m: m.setattr(protocol, "connection_message", _raise), BOTH),
    "join hub (watcher)": (lambda s, m: m.setattr(s.hub, "add_watcher", _after(s.hub.add_watcher)), MONITOR),
    "join hub (viewer)": (
        lambda s, m: m.setattr(ConsoleChannel, "add_viewer", _after(ConsoleChannel.add_viewer)),
        CONSOLE,
    ),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_failure_at_any_step_of_open_closes_with_a_frame_and_releases_everything(
    step: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch, endpoints = STEPS[step]
    async with running_server() as server:
        patch(server, monkeypatch)
        for console in endpoints:
            _, close, _ = await refusal(ws_url(server, "web-2", console=console))
            assert close == 1011, (step, console)  # a close frame: internal error, not a 1006 drop
        await settle(server, "alice")
        assert_nothing_held(server, "alice")
        monkeypatch.undo()
        async with client(server, "web-2") as c:
            assert (await c.recv())["type"] == "connection"


# Items 6 and 12: query strings


async def test_undecodable_query_arguments_get_400_or_4001_and_never_log_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server() as server:
        base = f"http://127.0.0.1:{server.port}"
        status, body = await http(
            f"{base}/api/tickets", "POST", body=b"", headers={"Authorization": f"Bearer {token()}"}
        )
        ticket = orjson.loads(body)["ticket"]
        status, body = await http(f"{base}/api/vms?token={ticket}%FF")
        assert status == 400 and orjson.loads(body)["error"]["code"] == "AUTH_ERROR"
        tok = token()
        for path in (f"/ws/vms/my-vm?token={tok}%FF", f"/ws/vms/my-vm/console?token={tok}&since=%FF"):
            reader, writer = await raw_upgrade(server.port, path)
            opcode, payload = await read_frame(reader)
            assert opcode == 0x1 and orjson.loads(payload)["data"]["code"] == "AUTH_ERROR"
            assert (await close_frame(reader)) is not None
            writer.close()
    assert_no_error_logged(caplog)
    text = "\n".join(r.getMessage() for r in server_records(caplog))
    for secret in (ticket, tok, tok.split(".")[2]):
        assert secret not in text


@pytest.mark.parametrize(
    "since",
    ["²", "٣", "9" * 4301, "-1", "1e3", " 7"],
    ids=["superscript", "arabic-indic", "4301 digits", "negative", "exponent", "leading space"],
)
async def test_odd_since_values_are_refused_with_a_clear_error(since: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_server() as server:
        first, close, _ = await refusal(ws_url(server, "web-1", console=True, since=since))
        assert first is not None and first["data"]["code"] == "INVALID_COMMAND" and "since" in first["data"]["message"]
        assert close == 1008
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("exp", [10**400, float("inf")], ids=["10**400", "1e400"])
async def test_a_huge_exp_is_a_clean_auth_error(exp: float, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tok = forged_token(exp=exp)
    async with running_server() as server:
        first, close, _ = await refusal(ws_url(server, "my-vm", tok=tok))
        assert first is not None and first["data"]["code"] == "AUTH_ERROR" and close == 4001
        status, body = await http(f"http://127.0.0.1:{server.port}/api/vms?token={tok}")
        assert status == 401 and orjson.loads(body)["error"]["code"] == "AUTH_ERROR"
    assert_no_error_logged(caplog)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/vms"),
        ("DELETE", "/api/tickets"),
        ("POST", "/ws/vms/my-vm"),
        ("PUT", "/ws/vms/my-vm/console"),
        ("GET", "/ws/vms/%FF"),
    ],
)
async def test_405_and_400_without_a_token_log_one_line_and_no_error(
    method: str,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server() as server:
        status, _ = await http(
            f"http://127.0.0.1:{server.port}{path}", method, body=b"" if method in ("POST", "PUT") else None
        )
        assert status in (400, 405)
    assert_no_error_logged(caplog)
    lines = [r for r in server_records(caplog) if r.name in ("vmws.access", "tornado.access", "tornado.general")]
    assert len(lines) == 1, [r.getMessage() for r in lines]


# Item 12 on an open socket


async def test_heartbeat_data_nested_too_deep_is_answered_and_the_socket_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server() as server, client(server, "web-1") as c:
        await c.recv("connection")
        await c.ws.send('{"type": "heartbeat", "data": ' + "[" * 300 + "]" * 300 + "}")
        error = await c.recv("error")
        assert error["data"]["code"] == "INVALID_COMMAND"
        await c.send("heartbeat", {"after": 1})
        assert (await c.recv("heartbeat"))["data"] == {"after": 1}
    assert_no_error_logged(caplog)


# Item 7: names


@pytest.mark.parametrize("name", ["a" * 256, "é" * 128, "x" * 20_000], ids=["256 ascii", "128 e-acute", "20000 bytes"])
async def test_names_over_255_bytes_are_not_found_without_being_quoted(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server() as server:
        for console in (False, True):
            first, close, reason = await refusal(ws_url(server, name, console=console))
            assert first is not None and first["data"]["code"] == "VM_NOT_FOUND" and close == 4004
            assert name[:40] not in first["data"]["message"] and name[:40] not in (reason or "")
        assert not server.hub._consoles
    assert_no_error_logged(caplog)


# Item 13: frames


async def test_invalid_utf8_in_a_text_frame_closes_1007() -> None:
    async with running_server() as server:
        reader, writer = await raw_upgrade(server.port, f"/ws/vms/web-1?token={token()}")
        writer.write(frame(0x1, b'{"type": "heartbeat", "data": "\xff\xfe"}'))
        assert (await close_frame(reader) or (None,))[0] == 1007
        writer.close()


async def test_unmasked_client_frames_close_1002() -> None:
    async with running_server() as server:
        for payload in (b'{"type": "heartbeat"}', b""):
            reader, writer = await raw_upgrade(server.port, f"/ws/vms/web-1?token={token()}")
            opcode = 0x1 if payload else 0x9  # a text frame, then a ping
            writer.write(frame(opcode, payload, masked=False))
            assert (await close_frame(reader) or (None,))[0] == 1002
            writer.close()


# A backend without consoles


class ConsolelessBackend(SimulatorBackend):
    """The simulator, but like libvirt's test:/// driver: no consoles."""

    capabilities = frozenset(Capability) - {Capability.CONSOLE}


async def test_a_backend_without_consoles_refuses_with_4005(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = Server(Config(port=0, jwt_secret=SECRET), ConsolelessBackend(speed=20))
    await server.start()
    try:
        first, close, reason = await refusal(ws_url(server, "web-1", console=True))
        assert first is not None and "console" in first["data"]["message"] and close == 4005
        assert reason and "console" in reason
        first, close, _ = await refusal(ws_url(server, "ghost", console=True))
        assert first is not None and first["data"]["code"] == "VM_NOT_FOUND" and close == 4004
        async with client(server, "web-1") as c:  # monitoring is unaffected
            assert (await c.recv())["type"] == "connection"
    finally:
        await server.stop()
    assert_no_error_logged(caplog)


# Item 10: slowloris


@contextlib.asynccontextmanager
async def raw_http(server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def dropped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: Iterator[bytes]) -> bool:
    """Send one piece every 0.05 s; True once the server has closed the connection."""
    for piece in trickle:
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(reader.read(65536), 0.05)
            if data == b"":
                return True
        try:
            writer.write(piece)
            await writer.drain()
        except ConnectionError:
            return True
    return False


async def test_slowloris_headers_hit_a_total_deadline_a_trickle_does_not_extend() -> None:
    async with running_server(header_timeout=0.5, idle_timeout=0.5) as server:
        async with raw_http(server) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            # 200 header lines, one per 0.05 s: 10 s, twenty times the deadline.
            assert await dropped(reader, writer, (f"X-Slow-{i}: a\r\n".encode() for i in range(200)))
        async with raw_http(server) as (reader, writer):  # connects and says nothing
            assert await dropped(reader, writer, (b"" for _ in range(200)))


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with running_server(header_timeout=5, idle_timeout=0.5) as server:
        async with raw_http(server) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert b" 200 " in head.split(b"\r\n")[0]
            assert await dropped(reader, writer, (b"" for _ in range(200)))
