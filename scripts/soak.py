#!/usr/bin/env python3
"""Soak: many connect/disconnect cycles and an hour of simulated time with consoles open.

    .venv/bin/python scripts/soak.py [--cycles 100000] [--speed 60] [--consoles 20]

Starts ``vmws serve`` on a free loopback port with the simulated clock ``--speed``
times faster (60: one simulated hour per real minute), keeps ``--consoles`` console
viewers attached (logged in, typing now and then), and runs ``--cycles`` WebSocket
connect → first message → close cycles against the monitoring endpoint, ``--workers``
at a time. Every 10% it prints the server's open file descriptors and resident memory;
at the end it prints the drift from the first checkpoint after warm-up. Bounded in
count and time (``--max-seconds``); stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
SECRET = "soak-secret-soak-secret-soak-secret-0123"


def server_figures(pid: int) -> tuple[int, int]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return fds, rss_kib


async def console_viewer(base: str, token: str, vm: str, stop: asyncio.Event) -> int:
    received = 0
    async with connect(f"{base}/ws/vms/{vm}/console?token={token}", max_size=None) as ws:
        await ws.send('{"type":"console_input","data":{"content":"\\nadmin\\n"}}')
        await asyncio.sleep(0.2)
        await ws.send('{"type":"console_input","data":{"content":"admin\\n"}}')
        n = 0
        while not stop.is_set():
            try:
                async with asyncio.timeout(1.0):
                    received += len(await ws.recv())
            except TimeoutError:
                n += 1
                await ws.send('{"type":"console_input","data":{"content":"seq 1000\\n"}}')
    return received


async def cycles(base: str, token: str, count: int, workers: int, progress: Progress) -> None:
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            async with connect(f"{base}/ws/vms/web-1?token={token}") as ws:
                await ws.recv()
            progress.tick()

    await asyncio.gather(*(worker() for _ in range(workers)))


class Progress:
    def __init__(self, total: int, pid: int) -> None:
        self.total = total
        self.pid = pid
        self.done = 0
        self.points: list[tuple[int, int, int]] = []
        self.started = time.monotonic()

    def tick(self) -> None:
        self.done += 1
        if self.done % max(1, self.total // 10) == 0 or self.done == self.total:
            fds, rss = server_figures(self.pid)
            self.points.append((self.done, fds, rss))
            rate = self.done / (time.monotonic() - self.started)
            print(
                f"  {self.done:>7} cycles  fds={fds:<5} rss={rss / 1024:7.1f} MiB  ({rate:,.0f} cycles/s)", flush=True
            )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--consoles", type=int, default=20)
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    parser.add_argument("--sim-hours", type=float, default=1.0, help="keep consoles open this long in simulated time")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args()

    env = {**os.environ, "VMWS_JWT_SECRET": SECRET}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vmws",
            "serve",
            "--port",
            "0",
            "--speed",
            str(args.speed),
            "--max-connections-per-user",
            "100000",
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert server.stdout is not None
    banner = server.stdout.readline()
    port = int(re.search(r":(\d+)$", banner.strip()).group(1))  # type: ignore[union-attr]
    base = f"ws://127.0.0.1:{port}"
    sys.path.insert(0, str(ROOT))
    from vmws.auth import mint_token

    token = mint_token(SECRET, sub="soak", permissions=["read", "console"], now=time.time(), ttl=86400)
    started = time.monotonic()
    try:
        fds0, rss0 = server_figures(server.pid)
        print(f"vmws pid {server.pid} on {base}: fds={fds0} rss={rss0 / 1024:.1f} MiB at start")
        stop = asyncio.Event()
        vms = ["my-vm", *(f"web-{n}" for n in range(1, 6))]
        viewers = [
            asyncio.create_task(console_viewer(base, token, vms[i % len(vms)], stop)) for i in range(args.consoles)
        ]
        await asyncio.sleep(1.0)
        settled_before = server_figures(server.pid)
        progress = Progress(args.cycles, server.pid)
        async with asyncio.timeout(args.max_seconds):
            await cycles(base, token, args.cycles, args.workers, progress)
            # Consoles stay open until the simulated time is reached.
            await asyncio.sleep(max(0.0, args.sim_hours * 3600 / args.speed - (time.monotonic() - started)))
        await asyncio.sleep(1.0)
        settled_after = server_figures(server.pid)
        stop.set()
        received = sum(await asyncio.gather(*viewers))
        elapsed = time.monotonic() - started
        warm = progress.points[min(1, len(progress.points) - 1)]
        last = progress.points[-1]
        print(
            f"{args.cycles} cycles in {elapsed:.0f}s; {elapsed * args.speed / 3600:.2f} simulated hours with "
            f"{args.consoles} consoles open ({received / 1e6:.1f} MB of console traffic)"
        )
        print(
            f"open fds, idle: before the cycles {settled_before[0]}, after them {settled_after[0]} "
            f"(drift {settled_after[0] - settled_before[0]:+d})"
        )
        print(
            f"rss: after warm-up ({warm[0]} cycles) {warm[2] / 1024:.1f} MiB, after {last[0]} cycles "
            f"{last[2] / 1024:.1f} MiB, idle at the end {settled_after[1] / 1024:.1f} MiB "
            f"(drift {(settled_after[1] - warm[2]) / 1024:+.1f} MiB)"
        )
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        server.stdout.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
