"""``python -m loadtests.bench.takeover [--rounds 5] [--vm NAME]``: libvirt takeover time.

Two ``vmws serve --backend libvirt`` nodes over ``qemu:///system`` and one
``redis-server`` on loopback, with one tiny guest (booted by ``python -m harness up``
unless ``--vm`` names a running one). Each round ``kill -9``s the VM's owner node and
times, from the kill, until the other node serves the VM's console: a console socket
opened there, sent a carriage return, receives the guest's answer (a new prompt). The
killed node is then started again under its name (a candidate for the next round, whose
victim is the new owner). Prints each round, the median and the machine line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

from loadtests.bench.__main__ import load, machine
from loadtests.bench.common import median
from loadtests.cluster_procs import free_port, start_redis, wait_for_port
from vmws.auth import mint_token

__all__ = ["main"]

SECRET = "takeover-bench-" + "s" * 40
URI = "qemu:///system"


def _token() -> str:
    return mint_token(SECRET, sub="bench", permissions=["read", "console"], now=time.time(), ttl=3600)


class _Node:
    def __init__(self, directory: Path, name: str, vm: str, redis_url: str) -> None:
        self.directory, self.name, self.vm, self.redis_url = directory, name, vm, redis_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "VMWS_JWT_SECRET": SECRET, "VMWS_REDIS_URL": self.redis_url, "VMWS_NODE_NAME": self.name}
        argv = [sys.executable, "-m", "vmws", "serve", "--backend", "libvirt", "--libvirt-uri", URI]
        argv += ["--vm-filter", self.vm, "--port", str(self.port)]
        with open(self.directory / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        wait_for_port(self.port, self.proc, f"vmws node {self.name}", timeout=60)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def owner(self) -> str | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/vms", headers={"Authorization": f"Bearer {_token()}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            vms: list[dict[str, Any]] = json.loads(response.read())["vms"]
        return next((vm["node"] for vm in vms if vm["name"] == self.vm), None)


async def _serves_console(port: int, vm: str) -> bool:
    """One try: a console socket on ``port`` that answers a carriage return."""
    url = f"ws://127.0.0.1:{port}/ws/vms/{vm}/console?token={_token()}"
    try:
        async with websockets.connect(url, open_timeout=5) as ws:
            if json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "connection":
                return False
            end = None
            async with asyncio.timeout(3):
                # The history first; its last offset tells new output from old.
                while True:
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    except TimeoutError:
                        break
                    if message["type"] == "console":
                        end = message["data"]["offset"] + len(message["data"]["content"].encode())
                await ws.send(json.dumps({"type": "console_input", "timestamp": "", "data": {"content": "\r"}}))
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "console" and message["data"]["content"]:
                        if end is None or message["data"]["offset"] >= end:
                            return True
    except (TimeoutError, OSError, websockets.exceptions.WebSocketException, KeyError, ValueError):
        return False


async def _time_takeover(survivor: _Node, vm: str, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await _serves_console(survivor.port, vm):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise RuntimeError(f"node {survivor.name} did not serve {vm}'s console within {limit:g} s")


def _harness(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "harness", *args], check=True, stdout=subprocess.DEVNULL, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.takeover", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vm", help="a running guest on qemu:///system (default: boot a tiny one)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be from 1 to 50")
    vm = args.vm or f"vmws-bench-{os.getpid()}-takeover"
    if not args.vm:
        _harness("up", vm, "--uri", URI, "--image", "tiny", "--replace")
    directory = Path(tempfile.mkdtemp(prefix="vmws-takeover-"))
    redis = start_redis(directory / "redis")
    nodes = {name: _Node(directory, name, vm, redis.url) for name in ("node-1", "node-2")}
    times: list[float] = []
    try:
        for node in nodes.values():
            node.start()
        any_node = next(iter(nodes.values()))
        deadline = time.monotonic() + 60
        while any_node.owner() not in nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no node took {vm}")
            time.sleep(0.2)
        for round_no in range(1, args.rounds + 1):
            victim = nodes[str(any_node.owner())]
            survivor = next(n for n in nodes.values() if n is not victim)
            # The survivor serves the console before the kill (through the owner).
            asyncio.run(_time_takeover(survivor, vm, 300))
            victim.kill()
            took = asyncio.run(_time_takeover(survivor, vm, 60))
            owner = survivor.owner()
            print(f"round {round_no}: killed {victim.name}; {owner} serves the console after {took:.2f} s", flush=True)
            times.append(took)
            victim.start()
            any_node = survivor
    finally:
        for node in nodes.values():
            node.stop()
        redis.stop()
        if not args.vm:
            _harness("down", vm, "--uri", URI)
    print(
        f"takeover after kill -9 of the owner: median {median(times):.2f} s over {len(times)} rounds "
        f"(min {min(times):.2f}, max {max(times):.2f}; lease TTL 10 s, candidates try every 1 s)"
    )
    print(f"machine: {machine()}; {load()}")
    print(f"logs: {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
