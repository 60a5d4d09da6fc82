"""Debian's ``redis-server`` and ``haproxy`` as throwaway subprocesses on loopback.

Used by the cluster tests and benchmarks: each process binds 127.0.0.1 on a free port,
keeps every file (config, dump, log) in the directory it is given, persists nothing,
and is stopped by its ``stop`` (or the ``with`` block).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["free_port", "wait_for_port", "RedisProcess", "HAProxyProcess", "start_redis", "start_haproxy"]


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

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisProcess(_Process):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


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
        )
    _listening(proc, port, "haproxy")
    return HAProxyProcess(proc, port, directory)
