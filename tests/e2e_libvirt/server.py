"""A ``vmws serve --backend libvirt`` process for the end-to-end tests, and its tokens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from tests.harness.daemon import LIBVIRTD
from vmws.auth import mint_token

__all__ = ["SECRET", "URI", "start_server", "stop_server", "token"]

URI = "qemu:///system"
SECRET = "e2e-libvirt-secret-at-least-32-bytes-long"


def token(*perms: str) -> str:
    return mint_token(SECRET, sub="e2e", permissions=list(perms), now=time.time(), ttl=1800)


def start_server(vm_filter: str, log: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """The server and its base URL; its log (stderr) goes to ``log`` when given.

    libvirtd is held steady until the server has connected to it (it refuses to start
    without it); after that the server rides out restarts by itself.
    """
    with LIBVIRTD.steady():
        return _start_server(vm_filter, log)


def _start_server(vm_filter: str, log: Path | None) -> tuple[subprocess.Popen[str], str]:
    stderr: IO[str] | int = subprocess.DEVNULL if log is None else log.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vmws",
            "serve",
            "--backend",
            "libvirt",
            "--libvirt-uri",
            URI,
            "--vm-filter",
            vm_filter,
            "--port",
            "0",
            "--metrics-interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "VMWS_JWT_SECRET": SECRET},  # never on argv (visible in `ps`)
    )
    if not isinstance(stderr, int):
        stderr.close()  # the server holds its own copy
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, f"ws://127.0.0.1:{match.group(1)}"
    proc.kill()
    pytest.fail("vmws serve --backend libvirt did not print its banner")


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (clients get 1001), then SIGKILL if it does not go within 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    if proc.stdout:
        proc.stdout.close()
