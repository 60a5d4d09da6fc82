"""Any node serves any VM: the relay through Redis over real nodes and a real Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from simulator.scenario import demo_fleet

from .conftest import Node, token
from .test_cluster import http

pytestmark = pytest.mark.xdist_group("cluster")


def listing(node: Node) -> dict[str, dict[str, Any]]:
    status, body = http("GET", node.http + "/api/vms", token("read"))
    assert status == 200
    return {vm["name"]: vm for vm in body["vms"]}


async def recv(ws: Any, kind: str, timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


def owned_by(nodes: list[Node], node: Node, status: str = "running") -> str:
    return next(name for name, vm in listing(nodes[0]).items() if vm["node"] == node.name and vm["status"] == status)


def test_every_node_lists_every_vm_of_the_cluster_with_its_node(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    everything = {vm.name for vm in demo_fleet().vms}
    seen = [listing(node) for node in nodes]
    for vms in seen:
        assert set(vms) == everything
        assert vms == seen[0]
    assert {vm["node"] for vm in seen[0].values()} == {"node-1", "node-2", "node-3"}


@pytest.mark.asyncio
async def test_a_command_from_node_2_on_a_vm_of_node_1_answers_on_2_and_node_3_sees_the_status(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with websockets.connect(f"{nodes[2].ws}/ws/vms/{vm}?token={token()}") as watcher, \
            websockets.connect(f"{nodes[1].ws}/ws/vms/{vm}?token={token()}") as commander:
        assert (await recv(watcher, "connection"))["data"]["vm"] == vm
        assert (await recv(watcher, "status"))["data"]["status"] == "running"
        await recv(watcher, "metrics")
        await recv(watcher, "metrics")  # metrics keep coming from the owner
        await recv(commander, "status")
        await commander.send(json.dumps({"type": "command", "timestamp": "2023-05-23T12:34:56Z",
                                         "data": {"action": "pause", "requestId": "r-42"}}))
        response = (await recv(commander, "response"))["data"]
        assert response == {**response, "requestId": "r-42", "success": True, "status": "paused"}
        assert (await recv(watcher, "status"))["data"]["status"] == "paused"
        await commander.send(json.dumps({"type": "command", "timestamp": "2023-05-23T12:34:56Z",
                                         "data": {"action": "restart", "requestId": "r-43"}}))
        refused = (await recv(commander, "response"))["data"]
        assert refused["requestId"] == "r-43" and not refused["success"] and refused["code"] == "VM_NOT_RUNNING"
    assert listing(nodes[2])[vm]["status"] == "paused"
