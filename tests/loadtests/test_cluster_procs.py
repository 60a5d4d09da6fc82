"""The load tests' cluster: Redis, nodes and HAProxy all started on loopback, and all
gone afterwards — after a normal stop and after a node that fails to start."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from loadtests.cluster_procs import VmwsNode, start_cluster


def _secret(directory: Path) -> str:
    # a leading "-" (it goes through the environment), and one per test: it marks the nodes
    return f"-cluster-procs-{directory.name}-" + "s" * 32


def _left_running(directory: Path) -> list[str]:
    """Live processes a cluster started in ``directory`` left: Redis and HAProxy name the
    directory in their command line, the nodes have the test's secret in their environment."""
    marks = (str(directory).encode(), f"VMWS_JWT_SECRET={_secret(directory)}".encode())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if marks[0] in cmdline or marks[1] in environ.split(b"\0"):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.mark.timeout(90)
def test_a_cluster_serves_through_haproxy_and_stops_whole(tmp_path: Path) -> None:
    with start_cluster(tmp_path, 2, _secret(tmp_path)) as cluster:
        assert [n.name for n in cluster.nodes] == ["node-1", "node-2"]
        assert set(cluster.processes()) == {"node-1", "node-2", "redis", "haproxy"}
        for _ in range(4):  # round-robin: both nodes answer through the balancer
            with urllib.request.urlopen(cluster.base_url.replace("ws://", "http://") + "/healthz", timeout=10):
                pass
        assert int(cluster.redis.info("server")["redis_version"].split(".")[0]) >= 7
        pids = list(cluster.processes().values())
    assert all(not os.path.exists(f"/proc/{pid}") for pid in pids)  # stopped and reaped
    assert _left_running(tmp_path) == []


@pytest.mark.timeout(90)
def test_a_node_that_does_not_start_leaves_nothing_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # node-1 starts; node-2 is given a shard it refuses (3/2): start_cluster must stop
    # node-1 and Redis before it raises
    real_start = VmwsNode.start

    def start(self: VmwsNode, timeout: float = 30.0) -> VmwsNode:
        if self.name == "node-2":
            self.flags = ("--shard", "3/2")
        return real_start(self, timeout)

    monkeypatch.setattr(VmwsNode, "start", start)
    with pytest.raises(RuntimeError, match="node-2"):
        start_cluster(tmp_path, 2, _secret(tmp_path))
    assert _left_running(tmp_path) == []
