"""``vmws serve --loop asyncio|uvloop`` (env ``VMWS_LOOP``): the server runs and serves on either."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import SECRET, token


def _serve(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, str]:
    """The server, its port and what it printed up to its banner."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmws", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "VMWS_JWT_SECRET": SECRET, **(env or {})},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    printed = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        printed += line
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1)), printed
        if not line:
            break
    proc.kill()
    raise AssertionError("vmws serve did not start")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    return out


async def _watch_one(port: int) -> dict[str, object]:
    async with connect(f"ws://127.0.0.1:{port}/ws/vms/my-vm?token={token()}") as ws:
        return orjson.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--loop", "asyncio"), {}, "asyncio"),
        (("--loop", "uvloop"), {}, "uvloop"),
        ((), {"VMWS_LOOP": "asyncio"}, "asyncio"),
        ((), {}, "uvloop"),  # the default when uvloop can be imported
    ],
)
def test_serve_runs_on_the_loop_chosen(args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    proc, port, printed = _serve(*args, env=env)
    try:
        first = asyncio.run(_watch_one(port))
        assert first["type"] == "connection"
    finally:
        printed += _stop(proc)
    assert f"event loop {expected};" in printed
    assert proc.returncode == 0


def test_an_unknown_loop_from_the_environment_is_a_message_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vmws", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "VMWS_LOOP": "trio"},
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown event loop 'trio': choose one of asyncio, uvloop" in done.stderr
    assert "Traceback" not in done.stderr
