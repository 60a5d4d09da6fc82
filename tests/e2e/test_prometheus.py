"""``GET /metrics`` over a real server, parsed with prometheus_client's own parser:
counters move by what known traffic did; the token needs ``metrics``, the separate
``--metrics-listen`` address needs none."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from websockets.asyncio.client import connect

from tests.e2e.client import Client, client, running_server, token, ws_url
from tests.e2e.test_console import login
from tests.e2e.test_limits_console import stalled_viewer, viewers_of
from vmws.app import Server

pytestmark = pytest.mark.asyncio

SCRAPER = token(["metrics"], sub="prometheus")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: Server, *, port: int | None = None, tok: str | None = SCRAPER) -> Samples:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    reply = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port or server.port}/metrics", headers=headers)
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_by_what_known_traffic_did() -> None:
    async with running_server() as server:
        before = await scrape(server)
        async with client(server, "my-vm") as monitor, client(server, "web-1", console=True) as console:
            await monitor.recv("status")
            await console.recv("connection")
            during = await scrape(server)
            assert value(during, "vmws_open_sockets", endpoint="monitor") == 1
            assert value(during, "vmws_open_sockets", endpoint="console") == 1
            assert (await monitor.command("stop", "p1"))["success"] is True
            assert (await monitor.command("stop", "p2"))["success"] is True  # stopping a stopped VM: fine
            assert (await monitor.command("suspend", "p3"))["success"] is False
            await console.send("console_input", {"content": "\n"})
            await console.read_console_until("login: ")
        async with connect(ws_url(server, "my-vm", tok="not-a-token")) as ws:
            assert (await Client(ws).closed())[0] == 4001
        after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("vmws_commands_total", action="stop", outcome="success") == 2
    assert moved("vmws_commands_total", action="suspend", outcome="failed") == 1
    assert moved("vmws_command_duration_seconds_count", action="stop") == 2
    assert moved("vmws_command_duration_seconds_bucket", action="stop", le="+Inf") == 2
    assert moved("vmws_messages_total", direction="in", type="command") == 3
    assert moved("vmws_messages_total", direction="in", type="console_input") == 1
    assert moved("vmws_messages_total", direction="out", type="response") == 3
    assert moved("vmws_messages_total", direction="out", type="connection") == 2
    assert moved("vmws_message_bytes_total", direction="out", type="status") > 0
    assert moved("vmws_console_bytes_total", direction="in") == 1  # the "\n" typed
    assert moved("vmws_console_bytes_total", direction="out") > 0
    assert moved("vmws_console_read_bytes") > 0
    assert moved("vmws_auth_refused_total", reason="invalid") == 1
    assert value(after, "vmws_open_sockets", endpoint="monitor") == 0
    assert value(after, "vmws_cluster_owned_vms") == 0


async def test_vms_by_status_match_the_vm_list() -> None:
    async with running_server() as server:
        samples = await scrape(server)
        vms = await server.backend.list()
    for status in ("running", "stopped", "paused", "suspended", "error"):
        assert value(samples, "vmws_vms", status=status) == sum(1 for v in vms if v.status.value == status)
    assert sum(value(samples, "vmws_vms", status=s) for s in ("running", "stopped")) > 0


async def test_heartbeat_reaps_and_slow_viewer_cutoffs_are_counted() -> None:
    bound = 128 * 1024
    async with running_server(heartbeat_interval=0.3, max_pending_bytes=bound, scrollback_bytes=4096) as server:
        _, stalled = await stalled_viewer(server.port, "web-4", sub="stalled")
        async with client(server, "web-4", console=True) as fast:
            await login(fast, "web-4")
            await fast.send("console_input", {"content": "yes flooding-the-console\n"})
            async with asyncio.timeout(60):
                while any(p.user == "stalled" and not p.closing for p in viewers_of(server, "web-4")):
                    await fast.recv("console")
            await fast.send("console_input", {"content": "\x03"})
            await fast.read_console_until("admin@web-4:~$ ")
        stalled.close()
        reader, silent = await asyncio.open_connection("127.0.0.1", server.port)
        silent.write(
            f"GET /ws/vms/my-vm?token={token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        async with asyncio.timeout(10):  # never answers pings: reaped
            while b"heartbeat timeout" not in received:
                received += await reader.read(65536)
        silent.close()
        samples = await scrape(server)
    assert value(samples, "vmws_slow_client_cutoffs_total") == 1
    assert value(samples, "vmws_heartbeat_reaps_total") == 1


async def test_the_token_needs_metrics_and_the_separate_listener_needs_none() -> None:
    async with running_server(metrics_listen="127.0.0.1:0") as server:
        assert server.metrics_port and server.metrics_port != server.port
        open_samples = await scrape(server, port=server.metrics_port, tok=None)
        assert ("vmws_vms", (("status", "running"),)) in open_samples
        for tok, status in ((None, 401), (token(["read", "control", "console", "audit"]), 403)):
            with pytest.raises(HTTPClientError) as refused:
                await scrape(server, tok=tok)
            assert refused.value.code == status
        with pytest.raises(HTTPClientError) as elsewhere:  # the open listener serves /metrics only
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{server.metrics_port}/api/vms")
        assert elsewhere.value.code == 404
