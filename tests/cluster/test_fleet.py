"""/ws/fleet across a 3-node cluster: real Redis, real ``vmws serve`` nodes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from simulator.scenario import demo_fleet
from vmws.auth import mint_token

from .conftest import SECRET, Node, token
from .test_relay import listing, owned_by, recv

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]

FAST = ("--fleet-interval", "1", "--metrics-interval", "0.5")


def fleet_socket(node: Node, tok: str | None = None, glob: str | None = None) -> Any:
    query = f"token={tok or token('read', 'control')}" + (f"&vms={glob}" if glob else "")
    return websockets.connect(f"{node.ws}/ws/fleet?{query}", max_size=None)


async def snapshot(ws: Any) -> dict[str, dict[str, Any]]:
    assert (await recv(ws, "connection"))["data"]["vm"] == "*"
    vms: dict[str, dict[str, Any]] = {}
    while True:
        message = json.loads(await ws.recv())
        assert message["type"] == "fleet_snapshot", message
        vms.update((vm["name"], vm) for vm in message["data"]["vms"])
        if message["data"]["complete"]:
            return vms


async def summary(ws: Any) -> dict[str, dict[str, Any]]:
    """The next whole summary (changes before it are skipped)."""
    vms: dict[str, dict[str, Any]] = {}
    while True:
        message = await recv(ws, "fleet_summary")
        vms.update((vm["name"], vm) for vm in message["data"]["vms"])
        if message["data"]["complete"]:
            return vms


async def change_of(
    ws: Any, vm: str, kind: str = "fleet_status", timeout: float = 30, seen: set[str] | None = None
) -> dict[str, Any]:
    """The next ``kind`` message about ``vm``; ``seen`` collects every VM named on the way."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            data = message["data"]
            if seen is not None and isinstance(data, dict):
                seen.update(entry["name"] for entry in data.get("vms", [data]) if "name" in entry)
            if message["type"] == kind and data["name"] == vm:
                return dict(data)


async def command(node: Node, vm: str, action: str) -> dict[str, Any]:
    async with websockets.connect(f"{node.ws}/ws/vms/{vm}?token={token()}") as ws:
        await recv(ws, "status")
        data = {"action": action, "requestId": f"{action}-1"}
        await ws.send(json.dumps({"type": "command", "timestamp": "2023-05-23T12:34:56Z", "data": data}))
        return dict((await recv(ws, "response"))["data"])


async def test_every_node_s_fleet_socket_shows_every_vm_of_the_cluster_and_their_changes(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    everything = {vm.name for vm in demo_fleet().vms}
    # A node started after the others reads their records before it listens; the earlier
    # ones learn a later node's VMs from its first summary (at its start, or its next
    # --fleet-interval on a loaded machine): wait for that, bounded.
    for node in nodes:
        for _ in range(20):
            async with fleet_socket(node) as ws:
                if set(await snapshot(ws)) == everything:
                    break
            await asyncio.sleep(0.5)
    for node in nodes:
        async with fleet_socket(node) as ws:
            vms = await snapshot(ws)
            assert set(vms) == everything, node.name  # every node's VMs, in one snapshot
            assert {vm["status"] for vm in vms.values()} >= {"running", "stopped"}
            # Each summary carries every VM, with CPU and memory from each VM's owner.
            whole = await summary(ws)
            assert set(whole) == everything
            running = [vm for name, vm in whole.items() if listing(node)[name]["status"] == "running"]
            assert running and all(0 <= vm["cpu"]["utilization"] <= 100 for vm in running)
            assert all(vm["memory"]["used"] <= vm["memory"]["total"] for vm in running)

    vm = owned_by(nodes, nodes[0])
    async with fleet_socket(nodes[2]) as ws:
        before = (await snapshot(ws))[vm]
        assert before["status"] == "running" and before["uptime"] >= 0
        assert (await command(nodes[1], vm, "pause"))["success"]
        paused = await change_of(ws, vm)  # a command on node 1's VM, seen on node 3
        assert paused["status"] == "paused" and paused["lastStateChange"] > before["lastStateChange"]
        assert (await command(nodes[0], vm, "resume"))["success"]
        assert (await change_of(ws, vm))["status"] == "running"


async def test_filters_apply_to_other_nodes_vms_as_on_one_node(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    web = {vm.name for vm in demo_fleet().vms if vm.name.startswith("web-")}
    assert {listing(nodes[0])[name]["node"] for name in web} != {nodes[2].name}  # some live elsewhere
    scoped = mint_token(SECRET, sub="bob", permissions=["read"], vms=["web-*"], now=time.time(), ttl=600)
    async with fleet_socket(nodes[2], scoped) as by_token, fleet_socket(nodes[2], glob="web-*") as by_glob:
        for ws in (by_token, by_glob):
            assert set(await snapshot(ws)) == web
        for ws in (by_token, by_glob):
            assert set(await summary(ws)) == web
        outside = owned_by(nodes, nodes[0])
        if not outside.startswith("web-"):
            assert (await command(nodes[0], outside, "pause"))["success"]
        inside = next(name for name in sorted(web) if listing(nodes[0])[name]["node"] != nodes[2].name)
        assert (await command(nodes[0], inside, "pause"))["success"]
        for ws in (by_token, by_glob):
            seen: set[str] = set()
            assert (await change_of(ws, inside, seen=seen))["status"] == "paused"
            assert seen <= web  # nothing outside the filter, from any node


async def test_a_killed_node_s_vms_turn_error_then_come_back_and_a_stopped_node_s_vms_are_removed(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with fleet_socket(nodes[2]) as ws:
        await snapshot(ws)
        nodes[0].kill()
        lost = await change_of(ws, vm, timeout=40)  # within the liveness TTL and a check
        assert lost["status"] == "error" and "cpu" not in lost
        nodes[0].start()  # under its old name: its VMs are served again
        assert (await change_of(ws, vm, timeout=40))["status"] == "running"
        nodes[0].stop()  # cleanly: its VMs leave the cluster at once
        assert (await change_of(ws, vm, "fleet_removed"))["status"] == "running"
    async with fleet_socket(nodes[1]) as ws:
        assert vm not in await snapshot(ws)
        nodes[0].start()
        added = await change_of(ws, vm, "fleet_added")  # a node joining: its VMs appear
        assert added["status"] == "running"
