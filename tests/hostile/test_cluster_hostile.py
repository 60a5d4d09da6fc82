"""Whoever writes Redis is hostile: a real Redis, real ``vmws serve`` nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio

from simulator.scenario import demo_fleet
from tests.cluster.conftest import Node
from tests.cluster.test_fleet import fleet_socket, snapshot
from vmws.cluster import wire
from vmws.cluster.fleet import FLEET_CHANNEL, MAX_NODES

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]

FAST = ("--fleet-interval", "1", "--metrics-interval", "0.5")


async def test_nodes_that_died_or_never_lived_do_not_fill_the_fleet_for_good(redis_server: Any, tmp_path: Path) -> None:
    """A status from each of MAX_NODES names nobody runs (a Redis writer; or as many
    crashed nodes with per-start names, HOSTNAME:PORT of short-lived containers): the
    fleet kept a view of each forever, dead, and refused every node after them, so a
    node that joined later never appeared in the others' /ws/fleet."""
    first = Node(tmp_path, "node-1", "--shard", "1/2", *FAST, redis_url=redis_server.url).start()
    second = Node(tmp_path, "node-2", "--shard", "2/2", *FAST, redis_url=redis_server.url)
    try:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            for i in range(MAX_NODES):
                header = {"op": "status", "node": f"ghost-{i}", "inc": "x"}
                entry = ["ghost-vm", "running", 1.0, 1.0, None, None, None]
                await client.publish(FLEET_CHANNEL, wire.encode(header, orjson.dumps(entry)))
        finally:
            await client.aclose()
        second.start()
        everything = {vm.name for vm in demo_fleet().vms}
        async with asyncio.timeout(60):  # the ghosts are found dead within NODE_TTL + a refresh
            while True:
                async with fleet_socket(first) as ws:
                    vms = await snapshot(ws)
                if everything <= set(vms):
                    break
                await asyncio.sleep(0.5)
        assert "Traceback" not in first.log()
    finally:
        second.stop()
        first.stop()
