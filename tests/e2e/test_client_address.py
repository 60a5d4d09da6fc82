"""The real client address behind a balancer, over real sockets: a PROXY header (v1/v2) or
``X-Forwarded-For`` from a ``--trusted-proxy`` peer names the client in audit events and
the access log; from anyone else it is refused or ignored; hostile headers close the
connection with no traceback and no ERROR line."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import SECRET, running_server, token, ws_url
from vmws.app import Server
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config
from vmws.proxy_protocol import V2_SIGNATURE

CLIENT = "203.0.113.7"
CLIENT6 = "2001:db8::7"
CONSOLE = token(["console"], sub="erin")


def v2(
    source: str = CLIENT, *, command: int = 0x1, family: int | None = None, body: bytes | None = None, version: int = 2
) -> bytes:
    """A PROXY v2 header for a TCP client at ``source`` (or the ``family``/``body`` given)."""
    if body is None:
        address = ipaddress.ip_address(source)
        destination = ipaddress.ip_address("127.0.0.1" if address.version == 4 else "::1")
        body = address.packed + destination.packed + struct.pack("!HH", 50123, 8080)
        family = 0x11 if address.version == 4 else 0x21
    assert family is not None
    return V2_SIGNATURE + bytes([(version << 4) | command, family]) + struct.pack("!H", len(body)) + body


def v1(source: str = CLIENT) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 50123 8080\r\n".encode()


def http_get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def exchange(server: Server, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def closed_without_answer(server: Server, data: bytes) -> bool:
    """Whether the server closes the connection after ``data`` without a byte of reply."""
    return await exchange(server, data) == b""


async def console_session_remote(server: Server, header: bytes, vm: str = "web-1") -> str:
    """Open a console WebSocket after ``header`` on the same TCP connection; the address
    its audit event names."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(header)
    sock.setblocking(False)
    async with connect(ws_url(server, vm, console=True, tok=CONSOLE), sock=sock) as ws:
        first = orjson.loads(await ws.recv())
        assert first["type"] == "connection"
    events = server.hub.oversight.audit.events()
    opened = [e for e in events if e["kind"] == "console_session" and e["state"] == "opened"]
    return str(opened[-1]["remote"])


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vmws.access"]


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def ticket_remote(server: Server, *headers: str, prefix: bytes = b"") -> str:
    """Buy a ticket over a raw connection (``prefix`` first); the address its audit event names."""
    body = b""
    request = "\r\n".join(
        [
            "POST /api/tickets HTTP/1.1",
            "Host: 127.0.0.1",
            f"Authorization: Bearer {CONSOLE}",
            "Content-Length: 0",
            "Connection: close",
            *headers,
            "",
            "",
        ]
    ).encode()
    reply = await exchange(server, prefix + request + body)
    assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
    bought = [e for e in server.hub.oversight.audit.events() if e["kind"] == "ticket_issued"]
    return str(bought[-1]["remote"])


# Trusted peers


@pytest.mark.asyncio
async def test_a_proxy_v2_header_from_a_trusted_peer_names_the_client_in_audit_and_access_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(trusted_proxies=("127.0.0.1/32",)) as server:
        assert await console_session_remote(server, v2(CLIENT)) == CLIENT
        assert await console_session_remote(server, v2(CLIENT6)) == CLIENT6
        assert await ticket_remote(server, prefix=v2("198.51.100.20")) == "198.51.100.20"
        reply = await exchange(server, v2(CLIENT) + http_get("/healthz", "Connection: close"))
        assert reply.startswith(b"HTTP/1.1 200")
    assert any(f"({CLIENT})" in line and "/healthz" in line for line in access_lines(caplog))
    assert_no_error_logged(caplog)


@pytest.mark.asyncio
async def test_a_proxy_v1_line_from_a_trusted_peer_names_the_client() -> None:
    async with running_server(trusted_proxies=("127.0.0.0/8",)) as server:
        assert await console_session_remote(server, v1(CLIENT)) == CLIENT
        assert await ticket_remote(server, prefix=b"PROXY UNKNOWN\r\n") == "127.0.0.1"


@pytest.mark.asyncio
async def test_a_health_check_header_or_one_naming_no_tcp_client_keeps_the_balancers_address() -> None:
    """LOCAL (HAProxy's own checks), UNIX sockets and UNSPEC name no client: the spec
    says to use the connection's own address."""
    async with running_server(trusted_proxies=("127.0.0.1",)) as server:
        local = v2(command=0x0, family=0x00, body=b"")
        unix = v2(family=0x31, body=b"/run/client.sock".ljust(108, b"\0") + b"/run/vmws.sock".ljust(108, b"\0"))
        unspec = v2(family=0x00, body=b"")
        for header in (local, unix, unspec):
            assert await ticket_remote(server, prefix=header) == "127.0.0.1"
        # Without any header a trusted peer is served as itself (a plain HTTP check).
        assert await ticket_remote(server) == "127.0.0.1"


@pytest.mark.asyncio
async def test_x_forwarded_for_from_a_trusted_peer_gives_the_right_most_untrusted_address() -> None:
    async with running_server(trusted_proxies=("127.0.0.1/32", "10.0.0.0/8")) as server:
        assert await ticket_remote(server, "X-Forwarded-For: 198.51.100.9") == "198.51.100.9"
        # The client wrote the left part itself: only what trusted hops appended counts.
        chain = "X-Forwarded-For: 6.6.6.6, 198.51.100.9, 10.1.2.3"
        assert await ticket_remote(server, chain) == "198.51.100.9"
        # Two header lines are one list; garbage stops the walk at the last believable hop.
        assert await ticket_remote(server, "X-Forwarded-For: 192.0.2.1", "X-Forwarded-For: 10.0.0.9") == "192.0.2.1"
        assert await ticket_remote(server, "X-Forwarded-For: 192.0.2.1, not-an-ip, 10.0.0.9") == "10.0.0.9"
        # Behind a PROXY header naming a trusted hop, that hop's X-Forwarded-For counts too.
        assert await ticket_remote(server, "X-Forwarded-For: 192.0.2.44", prefix=v2("10.9.9.9")) == "192.0.2.44"
        # ... but not behind one naming an untrusted client.
        assert await ticket_remote(server, "X-Forwarded-For: 192.0.2.44", prefix=v2(CLIENT)) == CLIENT


@pytest.mark.asyncio
async def test_each_request_of_a_kept_alive_connection_is_read_afresh() -> None:
    async with running_server(trusted_proxies=("127.0.0.1/32",)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for forwarded in ("192.0.2.1", None, "192.0.2.2"):
                headers = [f"Authorization: Bearer {CONSOLE}", "Content-Length: 0"]
                if forwarded:
                    headers.append(f"X-Forwarded-For: {forwarded}")
                writer.write("\r\n".join(["POST /api/tickets HTTP/1.1", "Host: x", *headers, "", ""]).encode())
                await writer.drain()
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
        finally:
            writer.close()
        remotes = [e["remote"] for e in server.hub.oversight.audit.events() if e["kind"] == "ticket_issued"]
    assert remotes == ["192.0.2.1", "127.0.0.1", "192.0.2.2"]


# Untrusted peers


@pytest.mark.asyncio
async def test_from_an_untrusted_peer_x_forwarded_for_is_ignored_and_a_proxy_header_is_a_bad_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    for trusted in ((), ("10.0.0.0/8",)):
        async with running_server(trusted_proxies=trusted) as server:
            assert await ticket_remote(server, "X-Forwarded-For: 198.51.100.9") == "127.0.0.1"
            for header in (v2(CLIENT), v1(CLIENT)):
                reply = await exchange(server, header + http_get("/healthz"))
                assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
            assert not [e for e in server.hub.oversight.audit.events() if e.get("remote") == CLIENT]
    assert_no_error_logged(caplog)


# Hostile headers from a trusted peer


HOSTILE = {
    "truncated v2 preamble": V2_SIGNATURE + b"\x21",
    "v2 body shorter than its length": v2()[:20],
    "v2 length over the bound": V2_SIGNATURE + b"\x21\x11\xff\xff" + b"\0" * 64,
    "v2 version 1": v2(version=1),
    "v2 unknown command": v2(command=0xF),
    "v2 INET addresses too short": v2(family=0x11, body=b"\x01\x02\x03"),
    "v2 INET6 addresses too short": v2(family=0x21, body=b"\0" * 20),
    "v2 UNIX addresses too short": v2(family=0x31, body=b"/tmp/x"),
    "v1 without end of line": b"PROXY TCP4 " + b"1" * 200,
    "v1 bad address": b"PROXY TCP4 1.2.3.999 127.0.0.1 1 2\r\n",
    "v1 IPv6 as TCP4": b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
    "v1 bad port": b"PROXY TCP4 1.2.3.4 127.0.0.1 65536 2\r\n",
    "v1 leading-zero port": b"PROXY TCP4 1.2.3.4 127.0.0.1 01 2\r\n",
    "v1 unknown protocol": b"PROXY UDP4 1.2.3.4 127.0.0.1 1 2\r\n",
    "v1 too few fields": b"PROXY TCP4 1.2.3.4\r\n",
    "v1 not ASCII": "PROXY TCP4 1.2.3.٤ 127.0.0.1 1 2\r\n".encode(),
    "v1 wrong signature": b"PROXY\tTCP4 1.2.3.4 127.0.0.1 1 2\r\n",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_proxy_headers_from_a_trusted_peer_close_the_connection_without_a_traceback(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(trusted_proxies=("127.0.0.1/32",), header_timeout=1.0) as server:
        data = HOSTILE[case]
        reply = await exchange(server, data + http_get("/healthz", "Connection: close"))
        # Closed without being served: either nothing, or Tornado's 400 when the bytes are
        # not a PROXY header at all (then they are a malformed HTTP request).
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:100]
        # The server still serves the next client.
        assert (await exchange(server, http_get("/healthz", "Connection: close"))).startswith(b"HTTP/1.1 200")
    assert_no_error_logged(caplog)
    assert not any("Traceback" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_trusted_peer_that_sends_nothing_or_half_a_header_is_closed_at_the_header_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(trusted_proxies=("127.0.0.1/32",), header_timeout=0.5) as server:
        for start in (b"", b"P", V2_SIGNATURE[:5], V2_SIGNATURE + b"\x21\x11\x00\x0c\x01"):
            assert await closed_without_answer(server, start)
        # One deadline for the PROXY header and the request's headers together.
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await closed_without_answer(server, v2() + b"GET / HTTP/1.1\r\n")
        print(f"PROXY header then half a request: closed after {loop.time() - began:.2f}s (header timeout 0.5s)")
    assert_no_error_logged(caplog)


@pytest.mark.asyncio
async def test_a_bad_trusted_proxy_network_is_refused_at_start_with_a_clear_error() -> None:
    from vmws.config import Config

    with pytest.raises(ValueError, match="trusted-proxy '10.0.0.0/33' is not an address or a network"):
        Config(trusted_proxies=("10.0.0.0/33",))


@pytest.mark.asyncio
async def test_websocket_log_lines_name_the_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(trusted_proxies=("127.0.0.1/32",)) as server:
        await console_session_remote(server, v2(CLIENT))
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(v1("198.51.100.77"))
        sock.setblocking(False)
        async with connect(ws_url(server, "ghost", tok=CONSOLE), sock=sock) as ws:
            await ws.recv()  # the refusal: no such VM
    lines = [r.getMessage() for r in caplog.records if r.name == "vmws.handlers"]
    assert any(line.startswith("console open vm=web-1") and line.endswith(f"remote={CLIENT}") for line in lines)
    assert any(line.startswith("monitor refused vm=ghost") and "remote=198.51.100.77:" in line for line in lines)


@pytest.mark.asyncio
async def test_stopping_the_server_closes_connections_still_owing_their_proxy_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = Config(port=0, jwt_secret=SECRET, trusted_proxies=("127.0.0.1/32",), header_timeout=60)
    server = Server(config, SimulatorBackend(speed=20))
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(V2_SIGNATURE[:6])  # half a signature, then nothing for a minute
    await writer.drain()
    await asyncio.sleep(0.2)
    await server.stop()
    async with asyncio.timeout(10):  # well inside the minute: closed by the stop
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
    writer.close()
    assert_no_error_logged(caplog)
