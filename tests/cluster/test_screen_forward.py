"""A VM's screen opened on a node that does not own it is forwarded to the owner node
(real ``vmws serve`` nodes, a real Redis, RFB over the ``websockets`` client): the
owner's framebuffer arrives and typing reaches its VM, view-only stays view-only, the
forwarded socket closes when the owner dies (1013) or Redis is down (1013, new ones),
the session is audited once, on the node the client reached, and the cluster's
Prometheus series move."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.conftest import Node, token
from tests.cluster.test_cluster import http
from tests.cluster.test_relay import connect, listing, owned_by, recv
from tests.rfb_client import ENCODING_RAW, RFBClient, WebSocketTransport
from tests.screen.test_simulated_screen import last_line, picture, shows

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]


def screen_url(node: Node, vm: str, *, tok: str | None = None, watch: bool = False) -> str:
    return f"{node.ws}/ws/vms/{vm}/screen?token={tok or token()}" + ("&mode=watch" if watch else "")


@contextlib.asynccontextmanager
async def viewer(node: Node, vm: str, **kwargs: Any) -> AsyncIterator[RFBClient]:
    url = screen_url(node, vm, **kwargs)
    async with websockets.connect(url, subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        async with asyncio.timeout(15):
            client = await RFBClient.connect(WebSocketTransport(ws))
        yield client


def ws_of(client: RFBClient) -> Any:
    assert isinstance(client.transport, WebSocketTransport)
    return client.transport.ws


async def closed(ws: Any, timeout: float = 30) -> tuple[int | None, str | None, list[Any]]:
    frames: list[Any] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                frames.append(await ws.recv())
    return ws.close_code, ws.close_reason, frames


def audit_events(node: Node) -> list[dict[str, Any]]:
    status, body = http("GET", node.http + "/api/audit?limit=1000", token("audit", sub="auditor"))
    assert status == 200, body
    events: list[dict[str, Any]] = body["events"]
    return events


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: Node) -> Samples:
    request = urllib.request.Request(node.http + "/metrics")
    request.add_header("Authorization", f"Bearer {token('metrics', sub='prometheus')}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_screen_on_another_node_is_the_owners_and_typing_reaches_its_vm(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with viewer(nodes[1], vm) as client:
        assert (client.width, client.height) == (640, 400) and client.name
        await client.request_update(incremental=False)
        rects = await client.read_update()
        assert sum(r.width * r.height for r in rects if r.encoding == ENCODING_RAW) == 640 * 400
        await shows(client, lambda lines: last_line(lines) == f"{vm} login:")
        await client.type_text("admin\n")
        await shows(client, lambda lines: last_line(lines) == "Password:")
        await client.type_text("admin\n")
        await shows(client, lambda lines: last_line(lines) == f"admin@{vm}:~$")
        # one screen, shared: a viewer on the owner itself sees what was typed through the forward
        async with viewer(nodes[0], vm) as local:
            await shows(local, lambda lines: last_line(lines) == f"admin@{vm}:~$")
    assert "forwarded to its node node-1" in nodes[1].log()


@pytest.mark.parametrize("how", ["query", "token"])
async def test_a_view_only_viewer_stays_view_only_through_the_forward(
    redis_server: Any, start_nodes: Any, how: str
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    kwargs: dict[str, Any] = {"watch": True} if how == "query" else {"tok": token("read", "watch", sub="carol")}
    async with viewer(nodes[1], vm, **kwargs) as watcher, viewer(nodes[0], vm) as typist:
        await watcher.type_text("zzz")
        await watcher.ctrl_alt_del()
        await picture(watcher)  # the owner has handled the keys: the update request came after them
        await typist.type_text("y")
        lines = await shows(watcher, lambda lines: last_line(lines) == f"{vm} login: y")
        assert "z" not in last_line(lines)
    assert listing(nodes[1])[vm]["status"] == "running"  # no Ctrl-Alt-Del reboot either


async def test_the_owner_killed_closes_the_forwarded_screen_with_1013(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with viewer(nodes[1], vm) as client:
        await picture(client)
        nodes[0].kill()
        code, reason, frames = await closed(ws_of(client))
    assert all(isinstance(f, bytes) for f in frames)
    assert (code, reason) == (1013, "the screen's node 'node-1' went away: try again later")


async def test_redis_down_refuses_new_forwards_with_1013_and_an_open_one_keeps_working(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with viewer(nodes[1], vm) as client:
        await picture(client)
        redis_server.stop()
        # the forward is a WebSocket between the nodes: it needs no Redis once open
        await client.type_text("adm")
        await shows(client, lambda lines: last_line(lines) == f"{vm} login: adm")
        async with websockets.connect(screen_url(nodes[1], vm), subprotocols=["binary"]) as refused:  # type: ignore[list-item]
            code, reason, frames = await closed(refused)
        assert (code, frames) == (1013, [])
        assert reason == "try again later"


async def test_a_forwarded_screen_is_audited_once_on_the_node_the_client_reached(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with viewer(nodes[1], vm, tok=token(sub="dave"), watch=True) as client:
        await picture(client)
    expected = [("opened", "node-2", "watch"), ("closed", "node-2", "watch")]
    async with asyncio.timeout(15):  # events reach the shared stream in the background
        while True:
            sessions = [e for e in audit_events(nodes[0]) if e["kind"] == "screen_session"]
            if [(e["state"], e["node"], e["mode"]) for e in sessions] == expected:
                break
            await asyncio.sleep(0.1)
    opened, ended = sessions
    assert opened["user"] == ended["user"] == "dave" and opened["vm"] == ended["vm"] == vm
    assert opened["remote"] == "127.0.0.1" and opened["session"] == ended["session"]
    assert ended["bytesIn"] > 0 and ended["bytesOut"] > 640 * 400  # the full update came through
    assert ended["closeCode"] == 1000
    await asyncio.sleep(1.5)  # past the audit push: still no second copy from the owner
    assert len([e for e in audit_events(nodes[1]) if e["kind"] == "screen_session"]) == 2


async def test_the_cluster_series_count_owned_vms_and_messages_through_redis(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vms = listing(nodes[0])
    for node in nodes:
        owned = sum(1 for v in vms.values() if v["node"] == node.name)
        assert scrape(node)[("vmws_cluster_owned_vms", ())] == owned > 0
    vm = owned_by(nodes, nodes[0])

    def messages(node: Node, direction: str, kind: str) -> float:
        return scrape(node).get(("vmws_cluster_messages_total", (("direction", direction), ("kind", kind))), 0.0)

    before = {
        (n.name, d, k): messages(n, d, k)
        for n in nodes
        for d in ("sent", "received")
        for k in ("request", "output", "reply")
    }
    async with connect(nodes[1], vm) as monitor:
        await recv(monitor, "status")
        await monitor.send(
            json.dumps(
                {"type": "command", "timestamp": "2023-05-23T12:34:56Z", "data": {"action": "pause", "requestId": "m1"}}
            )
        )
        assert (await recv(monitor, "response"))["data"]["success"] is True

    def moved(node: Node, direction: str, kind: str) -> float:
        return messages(node, direction, kind) - before[(node.name, direction, kind)]

    # the command went to the owner on the VM's :in, its answer came back on node-2's reply channel
    assert moved(nodes[1], "sent", "request") >= 1 and moved(nodes[0], "received", "request") >= 1
    assert moved(nodes[0], "sent", "reply") >= 1 and moved(nodes[1], "received", "reply") >= 1
    # the pause's status change went out on the VM's :out and reached node-2
    assert moved(nodes[0], "sent", "output") >= 1 and moved(nodes[1], "received", "output") >= 1
