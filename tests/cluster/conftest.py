"""Real parts for the cluster tests: Debian's redis-server and haproxy on free loopback
ports (files in tmp_path only, stopped at teardown) and ``vmws serve`` nodes (the
secret through VMWS_JWT_SECRET, the Redis URL through VMWS_REDIS_URL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.cluster_procs import RedisProcess, free_port, start_redis, wait_for_port
from vmws.auth import mint_token

SECRET = "cluster-tests-" + "s" * 40


def token(*perms: str, sub: str = "alice") -> str:
    return mint_token(
        SECRET, sub=sub, permissions=list(perms or ("read", "control", "console")), now=time.time(), ttl=600
    )


class Node:
    """One ``vmws serve`` process; ``kill`` (SIGKILL) and ``start`` again under the same name."""

    def __init__(self, directory: Path, name: str, *flags: str, redis_url: str | None = None) -> None:
        self.directory = directory
        self.name = name
        self.flags = flags
        self.redis_url = redis_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.{self.starts}.log"

    def start(self) -> Node:
        self.starts += 1
        env = {**os.environ, "VMWS_JWT_SECRET": SECRET, "VMWS_NODE_NAME": self.name}
        env.pop("VMWS_REDIS_URL", None)
        if self.redis_url:
            env["VMWS_REDIS_URL"] = self.redis_url
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vmws", "serve", "--port", str(self.port), "--speed", "20", *self.flags],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        wait_for_port(self.port, self.proc, f"vmws node {self.name}", timeout=30)
        # The port listens from the bind on, but requests are answered only once the node
        # has registered in the cluster: wait for an answer, not for the port.
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.http + "/healthz", timeout=5):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"vmws node {self.name} does not answer: {self.log()[-2000:]}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.directory.glob(f"{self.name}.*.log")))


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
