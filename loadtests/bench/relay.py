"""``python -m loadtests.bench.relay [--rounds N]``: the built relay, measured.

Two ``vmws serve`` nodes (``--shard 1/2`` and ``2/2``) and ``redis-server`` on loopback;
one console viewer of a running VM owned by node 1, connected either to node 1 itself
(``owner``) or to node 2 (``relay``: every byte and keystroke crosses Redis). Per round
and placement:

- *console*: the viewer runs ``seq 1 N`` in the guest's shell; CPU of every process
  involved (both nodes and Redis, not this client) per MB of console output received;
- *echo*: 200 keystrokes at 50/s, each timed from send until its echo arrives.

Medians over the rounds; the ratios ``relay / owner`` are what count on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

from loadtests.bench.common import median, percentile
from loadtests.cluster_procs import free_port, start_redis, wait_for_port
from loadtests.procs import usage_of
from vmws.auth import mint_token

__all__ = ["main"]

SECRET = "relay-bench-" + "s" * 40
SEQ = 150_000  # ≈ 1 MB of console output
KEYSTROKES = 200


def _token() -> str:
    return mint_token(SECRET, sub="bench", permissions=["read", "control", "console"], now=time.time(), ttl=3600)


def _start_node(directory: Path, k: int, redis_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "VMWS_JWT_SECRET": SECRET, "VMWS_REDIS_URL": redis_url, "VMWS_NODE_NAME": f"node-{k}"}
    with open(directory / f"node-{k}.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vmws",
                "serve",
                "--port",
                str(port),
                "--shard",
                f"{k}/2",
                "--speed",
                "20",
                "--max-message-rate",
                "1000",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
        )
    wait_for_port(port, proc, f"node-{k}", timeout=30)
    return proc, port


def _vms(port: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/vms")
    request.add_header("Authorization", f"Bearer {_token()}")
    with urllib.request.urlopen(request, timeout=10) as response:
        vms: list[dict[str, Any]] = json.loads(response.read())["vms"]
        return vms


async def _send(ws: Any, content: str) -> None:
    await ws.send(
        json.dumps({"type": "console_input", "timestamp": "2023-05-23T12:34:56Z", "data": {"content": content}})
    )


async def _until(ws: Any, *needles: str, timeout: float = 60) -> tuple[int, str]:
    """Console bytes received until one of ``needles`` shows up, and which."""
    text, received = "", 0
    async with asyncio.timeout(timeout):
        while True:
            found = next((n for n in needles if n in text[-len(n) - 4096 :]), None)
            if found is not None:
                return received, found
            message = json.loads(await ws.recv())
            if message["type"] == "console":
                text += message["data"]["content"]
                received += len(message["data"]["content"].encode())


async def _round(port: int, vm: str, pids: list[int]) -> tuple[float, list[float]]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/vms/{vm}/console?token={_token()}", max_size=None) as ws:
        prompt = f"admin@{vm}:~$ "
        await asyncio.sleep(0.5)  # the history first
        await _send(ws, "\n")
        if (await _until(ws, "login: ", prompt))[1] == "login: ":
            await _send(ws, "admin\n")
            await _until(ws, "Password: ")
            await _send(ws, "admin\n")
            await _until(ws, prompt)
        before = sum(usage_of(pid).cpu_seconds for pid in pids)
        await _send(ws, f"seq 1 {SEQ}\n")
        received, _ = await _until(ws, f"\r\n{SEQ}\r\n{prompt}")
        cpu = sum(usage_of(pid).cpu_seconds for pid in pids) - before
        echoes = []
        for _ in range(KEYSTROKES):
            sent = time.perf_counter()
            await _send(ws, "x")
            await _until(ws, "x", timeout=10)
            echoes.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(0.02)
        await _send(ws, "\x15\n")
        return cpu * 1000 / (received / 1e6), echoes


async def _measure(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vmws-relay-bench-") as tmp:
        directory = Path(tmp)
        redis = start_redis(directory / "redis")
        nodes = [_start_node(directory, k, redis.url) for k in (1, 2)]
        try:
            await asyncio.sleep(1)
            vm = next(v["name"] for v in _vms(nodes[0][1]) if v["node"] == "node-1" and v["status"] == "running")
            pids = [nodes[0][0].pid, nodes[1][0].pid, redis.pid]
            results: dict[str, tuple[list[float], list[float]]] = {"owner": ([], []), "relay": ([], [])}
            for _ in range(rounds):
                for where, port in (("owner", nodes[0][1]), ("relay", nodes[1][1])):
                    cpu, echoes = await _round(port, vm, pids)
                    results[where][0].append(cpu)
                    results[where][1].extend(echoes)
        finally:
            for proc, _ in nodes:
                proc.terminate()
                proc.wait(15)
            redis.stop()
    owner_cpu, relay_cpu = median(results["owner"][0]), median(results["relay"][0])
    print(f"VM {vm}, {rounds} rounds, viewer on the owner node vs on the other node (all processes counted)")
    print("| workload | viewer on | CPU | × owner | p50 ms | p99 ms | × owner p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| console | owner | {owner_cpu:.1f} ms CPU per MB | 1.00 | | | |")
    print(f"| console | other node | {relay_cpu:.1f} ms CPU per MB | {relay_cpu / owner_cpu:.2f} | | | |")
    p99_owner = percentile(results["owner"][1], 99)
    for where, label in (("owner", "owner"), ("relay", "other node")):
        echoes = results[where][1]
        p99 = percentile(echoes, 99)
        print(f"| echo | {label} | | | {percentile(echoes, 50):.2f} | {p99:.2f} | {p99 / p99_owner:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(_measure(max(1, min(args.rounds, 20))))


if __name__ == "__main__":
    main()
