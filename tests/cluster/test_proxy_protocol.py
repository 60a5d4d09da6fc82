"""The client's address through a real HAProxy: ``docs/cluster/haproxy.cfg`` itself (its
ports moved to free ones) sends PROXY v2 to three nodes started with ``--trusted-proxy
127.0.0.1/32``; a client connecting from 127.0.0.2 is named in audit events and access
logs, HAProxy's health checks (PROXY v2 too) keep every node up, and the same client
reaching a node directly cannot forge an address."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from loadtests.cluster_procs import free_port, wait_for_port
from vmws.cli import build_parser

from .conftest import Node, token
from .test_relay import owned_by

pytestmark = pytest.mark.xdist_group("cluster")

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "cluster"
CLIENT = "127.0.0.2"  # the client's own loopback source: HAProxy's is 127.0.0.1


def test_the_example_haproxy_sends_proxy_v2_and_the_example_unit_trusts_a_proxy() -> None:
    config = (EXAMPLES / "haproxy.cfg").read_text()
    servers = [line for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers and all(line.rstrip().endswith("send-proxy-v2") for line in servers)
    unit = (EXAMPLES / "vmws@.service").read_text()
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(command.replace("%i", "1"))
    parsed = build_parser().parse_args(argv[argv.index("serve") :])
    assert parsed.trusted_proxy


def example_haproxy(directory: Path, nodes: list[Node]) -> tuple[subprocess.Popen[bytes], int]:
    """``docs/cluster/haproxy.cfg`` with its listening port and its servers' ports moved."""
    text = (EXAMPLES / "haproxy.cfg").read_text()
    port = free_port()
    text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{port}")
    for k, node in enumerate(nodes, 1):
        text, count = re.subn(rf"127\.0\.0\.1:808{k}\b", f"127.0.0.1:{node.port}", text)
        assert count == 1
    text = text.replace("maxconn 100000", "maxconn 1000")  # the test machine's fd limit
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "haproxy.cfg").write_text(text)
    log = open(directory / "haproxy.log", "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(directory / "haproxy.cfg")], stdout=log, stderr=log)
    log.close()
    wait_for_port(port, proc, "haproxy")
    return proc, port


def get_from(source: str, url: str, tok: str) -> dict[str, Any]:
    """GET ``url`` over a connection from ``source`` (a loopback address of our choosing)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    path = "/" + url.split("//")[1].split("/", 1)[1]
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return dict(json.loads(body))


async def console_from(source: str, port: int, vm: str, sub: str, *headers: tuple[str, str]) -> None:
    """Open and close a console socket from ``source`` through ``port``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.setblocking(False)
    url = f"ws://127.0.0.1:{port}/ws/vms/{vm}/console?token={token('console', sub=sub)}"
    async with websockets.connect(url, sock=sock, additional_headers=list(headers)) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert first["type"] == "connection", first


def opened_sessions(node: Node, sub: str) -> list[dict[str, Any]]:
    auditor = token("audit", sub="auditor")
    events = get_from("127.0.0.1", f"{node.http}/api/audit?kind=console_session&user={sub}", auditor)["events"]
    return [e for e in events if e.get("kind") == "console_session" and e.get("state") == "opened"]


@pytest.mark.asyncio
async def test_through_haproxy_audit_and_logs_name_the_client_not_the_balancer(
    tmp_path: Path, redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, "--trusted-proxy", "127.0.0.1/32", redis_url=redis_server.url)
    haproxy, port = example_haproxy(tmp_path / "haproxy", nodes)
    try:
        vm = owned_by(nodes, nodes[0])
        # Round-robin: three sockets land on the three nodes.
        for _ in range(3):
            await console_from(CLIENT, port, vm, "zoe")
        # HAProxy checks every node with PROXY v2 (LOCAL) too: all stay up, so each got one.
        deadline = time.monotonic() + 15
        while len(sessions := opened_sessions(nodes[1], "zoe")) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert len(sessions) == 3
        assert {e["remote"] for e in sessions} == {CLIENT}
        assert {e["node"] for e in sessions} == {node.name for node in nodes}
        for node in nodes:
            log = node.log()
            assert re.search(rf"GET /ws/vms/{vm}/console\?token=\S+ \({re.escape(CLIENT)}\)", log), log[-2000:]
            assert " ERROR " not in log and "Traceback" not in log
        # The same client straight to a node: it is no trusted proxy, so its claims count
        # for nothing and it is named by its own address.
        await console_from(CLIENT, nodes[2].port, vm, "yann", ("X-Forwarded-For", "192.0.2.66"))
        await asyncio.sleep(0.5)
        assert [e["remote"] for e in opened_sessions(nodes[0], "yann")] == [CLIENT]
    finally:
        haproxy.terminate()
        haproxy.wait(10)


def test_a_node_without_trust_refuses_the_proxy_header_haproxy_sends(tmp_path: Path, start_nodes: Any) -> None:
    """Misconfigured: HAProxy sends PROXY v2 to a node that trusts nobody. Every request
    is a clear 400 at HAProxy's door, the node stays up and logs no error."""
    nodes = start_nodes(3)
    haproxy, port = example_haproxy(tmp_path / "haproxy", nodes)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (400, 502, 503)
        refused.value.close()
        for node in nodes:
            with urllib.request.urlopen(node.http + "/healthz", timeout=10) as direct:
                assert direct.status == 200
            assert " ERROR " not in node.log() and "Traceback" not in node.log()
    finally:
        haproxy.terminate()
        haproxy.wait(10)
