"""A throwaway vmws cluster on loopback: Debian's ``redis-server`` and ``haproxy`` and
``vmws serve`` nodes as subprocesses.

Used by the cluster tests, the load tests (``python -m loadtests.run … --cluster 3``) and
the benchmarks: each process binds 127.0.0.1 on a free port, keeps every file (config,
dump, log) in the directory it is given, persists nothing, and is stopped by its
``stop`` (or the ``with`` block). Secrets go through the environment
(``VMWS_JWT_SECRET``, ``VMWS_REDIS_URL``), never ``argv``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from loadtests.procs import ProcessUsage, raise_nofile, usage_of

__all__ = [
    "free_port",
    "wait_for_port",
    "RedisProcess",
    "HAProxyProcess",
    "VmwsNode",
    "Cluster",
    "start_redis",
    "start_haproxy",
    "start_cluster",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g}s")


def _listening(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    """Wait for ``proc`` to listen; kill it if it does not."""
    try:
        wait_for_port(port, proc, what)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _need(program: str) -> str:
    found = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.path.exists(p)), None
    )
    if found is None:
        raise RuntimeError(f"{program} is not installed (Debian package: {program}; ./dev test installs it)")
    return found


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Process:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, directory: Path) -> None:
        self.proc = proc
        self.port = port
        self.directory = directory

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def usage(self) -> ProcessUsage:
        return usage_of(self.proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        _terminate(self.proc, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisProcess(_Process):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        """One command through ``redis-cli`` (no client state in this process); its answer."""
        return subprocess.run(
            [_need("redis-cli"), "-p", str(self.port), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as ``field -> value``."""
        out = self.cli("info", section)
        fields = {}
        for line in out.splitlines():
            name, sep, value = line.partition(":")
            if sep and not name.startswith("#"):
                fields[name.strip()] = value.strip()
        return fields


class HAProxyProcess(_Process):
    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start_redis(directory: Path, *, port: int | None = None, extra: Sequence[str] = ()) -> RedisProcess:
    """A Redis on ``port`` (a free one by default), no persistence, files in ``directory``.
    Passing the previous ``port`` restarts "the same" Redis, empty."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        _need("redis-server"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        str(directory / f"redis-{port}.log"),
        *extra,
    ]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _listening(proc, port, "redis-server")
    return RedisProcess(proc, port, directory)


def start_haproxy(
    directory: Path, backends: Sequence[int], *, port: int | None = None, send_proxy_v2: bool = False
) -> HAProxyProcess:
    """HAProxy round-robin over ``backends`` (loopback ports), with WebSocket timeouts;
    ``send_proxy_v2``: the client's address in a PROXY v2 header, for nodes started with
    ``--trusted-proxy 127.0.0.1/32``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proxy = " send-proxy-v2" if send_proxy_v2 else ""
    servers = "\n".join(
        f"    server node-{i} 127.0.0.1:{p} check inter 1s fall 2 rise 1{proxy}" for i, p in enumerate(backends, 1)
    )
    config = directory / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n"
        "    timeout tunnel 1h\n\n"
        f"frontend vmws\n    bind 127.0.0.1:{port}\n    default_backend nodes\n\n"
        f"backend nodes\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}\n",
        encoding="utf-8",
    )
    with open(directory / "haproxy.log", "wb") as log:
        proc = subprocess.Popen(
            [_need("haproxy"), "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=raise_nofile,  # thousands of load-test sockets, twice (client and node side)
        )
    _listening(proc, port, "haproxy")
    return HAProxyProcess(proc, port, directory)


class VmwsNode:
    """One ``vmws serve`` node of a cluster; ``kill`` (SIGKILL) and ``start`` it again
    under the same name. Its log is one file per start, in ``directory``."""

    def __init__(
        self,
        directory: Path,
        name: str,
        *flags: str,
        secret: str,
        redis_url: str | None = None,
        speed: float = 1.0,
    ) -> None:
        self.directory = directory
        self.name = name
        self.flags = flags
        self.secret = secret
        self.redis_url = redis_url
        self.speed = speed
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
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.{self.starts}.log"

    def start(self, timeout: float = 30.0) -> VmwsNode:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        env = {**os.environ, "VMWS_JWT_SECRET": self.secret, "VMWS_NODE_NAME": self.name}
        env.pop("VMWS_REDIS_URL", None)
        if self.redis_url:
            env["VMWS_REDIS_URL"] = self.redis_url
        argv = [sys.executable, "-m", "vmws", "serve", "--port", str(self.port), "--speed", f"{self.speed:g}"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*argv, *self.flags],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                preexec_fn=raise_nofile,
            )
        wait_for_port(self.port, self.proc, f"vmws node {self.name}", timeout=timeout)
        # The port listens from the bind on, but requests are answered only once the node
        # has registered in the cluster: wait for an answer, not for the port.
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.http + "/healthz", timeout=5):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"vmws node {self.name} does not answer: {self.log()[-2000:]}") from None
                time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def usage(self) -> ProcessUsage:
        return usage_of(self.pid)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None:
            _terminate(self.proc, timeout)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.directory.glob(f"{self.name}.*.log")))


class Cluster:
    """Redis, ``n`` nodes with ``--shard k/n`` and (optionally) HAProxy round-robin over
    them; ``stop`` stops every one of them, balancer first."""

    def __init__(self, redis: RedisProcess, nodes: list[VmwsNode], haproxy: HAProxyProcess | None) -> None:
        self.redis = redis
        self.nodes = nodes
        self.haproxy = haproxy

    @property
    def base_url(self) -> str:
        """Where clients go: the balancer, or the first node without one."""
        return self.haproxy.base_url if self.haproxy is not None else self.nodes[0].ws

    def processes(self) -> dict[str, int]:
        """Every process of the cluster by role name, for CPU and memory figures."""
        pids = {node.name: node.pid for node in self.nodes if node.alive()}
        pids["redis"] = self.redis.pid
        if self.haproxy is not None:
            pids["haproxy"] = self.haproxy.pid
        return pids

    def alive(self) -> bool:
        return all(node.alive() for node in self.nodes) and self.redis.alive()

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for node in self.nodes:
            node.stop()
        self.redis.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(
    directory: Path,
    n: int,
    secret: str,
    *,
    flags: Sequence[str] = (),
    speed: float = 1.0,
    balancer: bool = True,
) -> Cluster:
    """Redis, ``n`` nodes named ``node-1`` … ``node-n`` with ``--shard k/n`` (plus
    ``flags``), and HAProxy in front when ``balancer``. What was started is stopped if
    a later part fails to start."""
    if n < 1:
        raise ValueError("a cluster needs at least one node")
    redis = start_redis(directory / "redis")
    nodes: list[VmwsNode] = []
    try:
        for k in range(1, n + 1):
            node = VmwsNode(
                directory / "nodes",
                f"node-{k}",
                "--shard",
                f"{k}/{n}",
                *flags,
                secret=secret,
                redis_url=redis.url,
                speed=speed,
            )
            nodes.append(node)
            node.start()
        haproxy = start_haproxy(directory / "haproxy", [node.port for node in nodes]) if balancer else None
    except BaseException:
        for node in nodes:
            node.stop()
        redis.stop()
        raise
    return Cluster(redis, nodes, haproxy)
