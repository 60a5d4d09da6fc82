"""Server processes for load tests: start ``vmws serve`` or a baseline, find its port,
read its CPU time and memory, stop it.

Every server binds 127.0.0.1 on a port the kernel picks (``--port 0``); the port is
read from the line the server prints when it listens. Output goes to a log file, not
a pipe, so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ServerProcess",
    "ProcessUsage",
    "raise_nofile",
    "pin_to",
    "start_server",
    "start_vmws",
    "start_baseline",
    "usage_of",
]

_LISTENING = re.compile(r"http://127\.0\.0\.1:(\d+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new limit.
    Ten thousand sockets need it on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin_to(cpu: int | None) -> None:
    """Pin this process to one CPU (``None``: leave it), if the machine has it."""
    if cpu is not None and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds (user + system) and resident memory of a process, at one moment."""

    cpu_seconds: float
    rss_bytes: int


def usage_of(pid: int) -> ProcessUsage:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        # the command name may hold spaces: fields are counted after its ')'
        fields = fh.read().rpartition(")")[2].split()
    utime, stime, rss_pages = int(fields[11]), int(fields[12]), int(fields[21])
    return ProcessUsage((utime + stime) / _CLOCK_TICKS, rss_pages * _PAGE)


class ServerProcess:
    """A running server subprocess and the port it listens on."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path, banner: str) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.banner = banner

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def usage(self) -> ProcessUsage:
        return usage_of(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    argv: Sequence[str],
    log_path: str | os.PathLike[str],
    *,
    cpu: int | None = None,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``argv`` (which must print ``http://127.0.0.1:PORT`` once listening)."""
    log_file = Path(log_path)
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def child_setup() -> None:  # runs in the child, before exec; both settings survive exec
        raise_nofile()
        pin_to(cpu)

    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=child_setup,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_file.read_text("utf-8", errors="replace")
        match = _LISTENING.search(text)
        if match:
            return ServerProcess(proc, int(match.group(1)), log_file, text)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode} before listening:\n{text[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{' '.join(argv)} did not start listening within {timeout:g}s (log: {log_file})")


def start_vmws(
    secret: str,
    log_path: str | os.PathLike[str],
    *,
    scenario: str | os.PathLike[str] | None = None,
    heartbeat_interval: float = 30.0,
    metrics_interval: float = 2.0,
    speed: float = 1.0,
    cpu: int | None = None,
    extra: Sequence[str] = (),
) -> ServerProcess:
    """``vmws serve`` on the simulator, on an unused port of 127.0.0.1."""
    argv = [
        sys.executable,
        "-m",
        "vmws",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--heartbeat-interval",
        f"{heartbeat_interval:g}",
        "--metrics-interval",
        f"{metrics_interval:g}",
        "--speed",
        f"{speed:g}",
        *extra,
    ]
    if scenario is not None:
        argv += ["--scenario", os.fspath(scenario)]
    # Through the environment, never argv: argv is readable in `ps` by every user, and a
    # secret starting with "-" reads as a flag to argparse (1 in 64 of token_urlsafe's).
    return start_server(argv, log_path, cpu=cpu, env={"VMWS_JWT_SECRET": secret})


def start_baseline(
    log_path: str | os.PathLike[str],
    *,
    cpu: int | None = None,
    json_lib: str = "stdlib",
    heartbeat_interval: float = 30.0,
    broadcast_interval: float = 1.0,
) -> ServerProcess:
    """The minimal Tornado baseline server (``loadtests.baseline``)."""
    argv = [
        sys.executable,
        "-m",
        "loadtests.baseline",
        "--port",
        "0",
        "--json",
        json_lib,
        "--heartbeat-interval",
        f"{heartbeat_interval:g}",
        "--broadcast-interval",
        f"{broadcast_interval:g}",
    ]
    return start_server(argv, log_path, cpu=cpu)
