"""Metrics of a VM watched on several other nodes: its owner samples it once per interval."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Node, token
from .test_relay import connect, owned_by, recv

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]

FAST = ("--fleet-interval", "1", "--metrics-interval", "0.5")


def samples_taken_for_other_nodes(node: Node) -> float:
    request = urllib.request.Request(node.http + "/metrics", headers={"Authorization": f"Bearer {token('metrics')}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "vmws_cluster_samples":
            return sum(s.value for s in family.samples if s.name == "vmws_cluster_samples_total")
    raise AssertionError("no vmws_cluster_samples counter in /metrics")


async def test_watchers_on_two_other_nodes_cost_the_owner_one_sample_per_interval(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    owner = nodes[0]
    vm = owned_by(nodes, owner)
    async with contextlib.AsyncExitStack() as stack:
        # Two watchers on each of the two other nodes.
        sockets = [
            await stack.enter_async_context(connect(node, vm)) for node in (nodes[1], nodes[1], nodes[2], nodes[2])
        ]
        for ws in sockets:
            await recv(ws, "status")
            await recv(ws, "metrics")  # right away, as on one node
        for ws in sockets:
            await recv(ws, "metrics")  # the owner publishes by now
        before = samples_taken_for_other_nodes(owner)
        rounds = 10
        counts = await asyncio.gather(*(count_metrics(ws, rounds) for ws in sockets))
        taken = samples_taken_for_other_nodes(owner) - before
    # Every socket still gets a `metrics` every interval (its own node's sampler) ...
    assert counts == [rounds] * len(sockets)
    # ... while the owner sampled once per interval for both nodes together, not once per
    # node (which made 2 per interval: ~20 here).
    assert 1 <= taken <= rounds + 3, taken


async def count_metrics(ws: Any, n: int) -> int:
    for _ in range(n):
        data = (await recv(ws, "metrics"))["data"]
        assert 0 <= data["cpu"]["utilization"] <= 100 and data["memory"]["used"] <= data["memory"]["total"]
    return n
