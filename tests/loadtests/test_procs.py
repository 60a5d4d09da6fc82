"""The load tests' server start: the secret reaches ``vmws serve`` through the
environment, so any secret works (the CI flake: one ``token_urlsafe(32)`` in 64 starts
with ``-``, which argparse read as a flag) and none shows in ``ps``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from loadtests.procs import start_vmws
from vmws.auth import mint_token

# What secrets.token_urlsafe(32) returns once in 64 runs: a leading "-".
DASH_SECRET = "-Mq1pXn0cBv3S9dWJ8e4tRkYzL6uH2aGfTiO7sE5VwQ"


def test_load_test_server_starts_with_a_secret_starting_with_a_dash(tmp_path: Path) -> None:
    with start_vmws(DASH_SECRET, tmp_path / "vmws.log") as server:
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert DASH_SECRET.encode() not in cmdline  # argv is readable by every user

        tok = mint_token(DASH_SECRET, sub="load", permissions=["read"], now=time.time(), ttl=60)

        async def first_message() -> dict[str, object]:
            async with connect(f"{server.base_url}/ws/vms/my-vm?token={tok}") as ws:
                message: dict[str, object] = orjson.loads(await ws.recv())
                return message

        assert asyncio.run(first_message())["type"] == "connection"
