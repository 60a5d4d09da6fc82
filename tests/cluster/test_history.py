"""``GET /api/vms/{name}/metrics`` on any node of a real 3-node cluster: the owner's history."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Node, token
from .test_cluster import http
from .test_relay import owned_by

pytestmark = pytest.mark.xdist_group("cluster")

FAST = ("--fleet-interval", "0.5", "--metrics-interval", "0.5")


def history(node: Node, vm: str, since: str | None = None) -> tuple[int, Any]:
    query = f"?since={since}" if since is not None else ""
    return http("GET", f"{node.http}/api/vms/{vm}/metrics{query}", token("read"))


def test_history_on_a_non_owner_node_is_the_owner_s(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    for since in (None, "600", "1.5"):
        # A sample may land between two reads: the non-owner's answer is one of the owner's
        # just before or just after it.
        for _ in range(5):
            before = history(nodes[0], vm, since)
            relayed = history(nodes[2], vm, since)
            after = history(nodes[0], vm, since)
            assert before[0] == relayed[0] == after[0] == 200
            if relayed[1] in (before[1], after[1]):
                break
        else:
            raise AssertionError(f"node-3's history of {vm} is none of node-1's: {relayed[1]!r}")
        samples = relayed[1]
        assert samples and set(samples[-1]) == {"timestamp", "cpu", "memory", "network", "disk"}
        assert [s["timestamp"] for s in samples] == sorted(s["timestamp"] for s in samples)


def test_history_refusals_across_nodes_follow_the_other_cross_node_reads(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(3, *FAST, redis_url=redis_server.url)
    vm, own, third = (owned_by(nodes, node) for node in nodes)
    status, body = history(nodes[1], "no-such-vm")
    assert status == 404 and body["error"]["code"] == "VM_NOT_FOUND"
    status, body = history(nodes[1], vm, "-1")
    assert status == 400 and body["error"]["code"] == "INVALID_COMMAND"
    nodes[0].kill()
    deadline = time.monotonic() + 30
    while True:  # 503 at once (nobody owns it), naming the node once its liveness key expired
        status, body = history(nodes[1], vm)
        assert status == 503 and body["error"]["code"] == "UNKNOWN_ERROR", body
        if "'node-1' is gone" in body["error"]["message"]:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    redis_server.stop()
    status, body = history(nodes[1], third)  # Redis down: other nodes' VMs are out of reach
    assert status == 503, body
    status, samples = history(nodes[1], own)  # this node's own VMs need no Redis
    assert status == 200 and samples
