"""In a cluster the screen is never relayed through Redis: another node's VM is refused
with 4006 naming its owner node (real nodes, a real Redis)."""

from __future__ import annotations

from typing import Any

import pytest
import websockets

from tests.cluster.conftest import Node, token
from tests.cluster.test_relay import listing, owned_by

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]


async def close_of(node: Node, vm: str) -> tuple[int | None, str | None, list[Any]]:
    frames: list[Any] = []
    url = f"{node.ws}/ws/vms/{vm}/screen?token={token()}"
    async with websockets.connect(url, subprotocols=["binary"]) as ws:  # type: ignore[list-item]
        try:
            while True:
                frames.append(await ws.recv())
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason, frames


async def test_another_nodes_vm_is_refused_with_4006_naming_its_owner(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    theirs = owned_by(nodes, nodes[0])
    code, reason, frames = await close_of(nodes[1], theirs)
    assert (code, frames) == (4006, [])
    assert reason == "this VM's screen is served only by its own node 'node-1': connect to that node"
    # the status is checked first, as on one node: a stopped VM of the other node is 4009
    stopped, owner = next((n, vm["node"]) for n, vm in listing(nodes[0]).items() if vm["status"] == "stopped")
    elsewhere = nodes[1] if owner == nodes[0].name else nodes[0]
    assert (await close_of(elsewhere, stopped))[:2] == (4009, "VM is not running")
    assert (await close_of(nodes[1], "ghost"))[0] == 4004
