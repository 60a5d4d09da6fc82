"""Real parts for the cluster tests: Debian's redis-server and haproxy on free loopback
ports (files in tmp_path only, stopped at teardown) and ``vmws serve`` nodes (the
secret through VMWS_JWT_SECRET, the Redis URL through VMWS_REDIS_URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.cluster_procs import RedisProcess, VmwsNode, start_redis
from vmws.auth import mint_token

SECRET = "cluster-tests-" + "s" * 40


def token(*perms: str, sub: str = "alice") -> str:
    return mint_token(
        SECRET, sub=sub, permissions=list(perms or ("read", "control", "console")), now=time.time(), ttl=600
    )


class Node(VmwsNode):
    """One ``vmws serve`` process of the tests (their secret, simulated clock ×20);
    ``kill`` (SIGKILL) and ``start`` again under the same name."""

    def __init__(self, directory: Path, name: str, *flags: str, redis_url: str | None = None) -> None:
        super().__init__(directory, name, *flags, secret=SECRET, redis_url=redis_url, speed=20)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def start_nodes(tmp_path: Path) -> Iterator[object]:
    started: list[Node] = []

    def start(n: int, *flags: str, redis_url: str | None = None, shard: bool = True) -> list[Node]:
        nodes = []
        for k in range(1, n + 1):
            shard_flags = ("--shard", f"{k}/{n}") if shard else ()
            node = Node(tmp_path, f"node-{k}", *shard_flags, *flags, redis_url=redis_url)
            started.append(node)
            nodes.append(node.start())
        return nodes

    yield start
    for node in started:
        node.stop()
