"""Benchmark 3: ten thousand connections held by one process: memory per connection.

vmws: console viewers of idle VMs (25 per VM, below the default viewer cap), with
heartbeats every ``interval``; the baseline: ``/idle`` with the same heartbeats. Both
are held for at least two heartbeat intervals: every connection must stay open and
receive every heartbeat. Memory per connection is the server's resident-set growth
over the connections it holds; kernel slab memory (both ends, machine-wide) is shown beside it.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from loadtests.bench.common import CLIENT_LIMIT, Bench, ClientMeter, Outcome, progress, vmws_loops
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect_many

__all__ = ["run"]

TARGET = 1.2
VIEWERS_PER_VM = 25


def _kernel_slab_bytes() -> int:
    """The kernel's slab memory (``/proc/meminfo``): socket, inode and epoll structures
    live there. Machine-wide, so other processes add noise."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Slab:"):
                return int(line.split()[1]) * 1024
    return 0


def _count_heartbeats(conn: Connection, payload: bytes, arrived: float) -> None:
    if b'"heartbeat"' in payload[:40] and conn.user is not None:
        conn.user[0] += 1  # type: ignore[index]


async def _hold(server: ServerProcess, urls: list[str], interval: float) -> dict[str, float]:
    before = server.usage().rss_bytes
    kernel_before = _kernel_slab_bytes()
    started = time.perf_counter()
    conns = await connect_many(urls, _count_heartbeats, timeout=600, progress=lambda n: progress(f"  {n} connected"))
    connect_seconds = time.perf_counter() - started
    try:
        await asyncio.sleep(2.0)
        for conn in conns:
            conn.user = [0]  # heartbeats counted from here
        held_from = time.perf_counter()
        client = ClientMeter()
        after = server.usage().rss_bytes
        kernel_after = _kernel_slab_bytes()
        expected = 2
        # long enough for two heartbeats whatever the phase of the server's timer
        await asyncio.sleep(expected * interval + interval * 0.5 + 1.0)
        held = sum(1 for c in conns if c.is_open)
        missed = sum(max(0, expected - c.user[0]) for c in conns)  # type: ignore[index]
        return {
            "connections": len(conns),
            "held": held,
            "missed_heartbeats": missed,
            "bytes_per_connection": (after - before) / len(urls),
            "kernel_bytes_per_connection": (kernel_after - kernel_before) / len(urls),
            "connect_seconds": connect_seconds,
            "held_seconds": time.perf_counter() - held_from,
            "rss_bytes": after,
            "client_cpu": client.share(),
        }
    finally:
        for conn in conns:
            conn.close()
        await asyncio.sleep(1.0)


async def run(out: Path, *, connections: int, interval: float, loops: tuple[str, ...] | None = None) -> Outcome:
    bench = Bench(out)
    loops = loops or vmws_loops()
    vms = math.ceil(connections / VIEWERS_PER_VM)
    mine: dict[str, dict[str, float]] = {}
    for loop in loops:
        with bench.vmws("idle", vms, heartbeat_interval=interval, loop=loop) as vmws:
            await asyncio.sleep(1.0)
            urls = [bench.console_url(vmws, i % vms) for i in range(connections)]
            progress(f"idle: {connections} console viewers of {vms} idle VMs on vmws[{loop}]")
            mine[f"vmws[{loop}]"] = await _hold(vmws, urls, interval)
    with bench.baseline("idle", heartbeat_interval=interval) as base:
        progress(f"idle: {connections} connections on the baseline")
        theirs = await _hold(base, [f"{base.base_url}/idle"] * connections, interval)
    main = f"vmws[{loops[0]}]"
    ratios = {k: v["bytes_per_connection"] / theirs["bytes_per_connection"] for k, v in mine.items()}
    client = max([theirs["client_cpu"], *(v["client_cpu"] for v in mine.values())])
    kept = 1 if max(mine[main]["client_cpu"], theirs["client_cpu"]) <= CLIENT_LIMIT else 0
    all_held = mine[main]["held"] == connections and mine[main]["missed_heartbeats"] == 0
    others = "".join(
        f"; on {k} {v['bytes_per_connection'] / 1000:.1f} KB, ratio {ratios[k]:.2f}, held {v['held']:.0f}"
        for k, v in mine.items()
        if k != main
    )
    return Outcome(
        "idle_10k",
        ratios[main],
        TARGET,
        higher=False,
        extra_ok=all_held,
        note=f"{main} held {mine[main]['held']:.0f}/{connections}, missed heartbeats "
        f"{mine[main]['missed_heartbeats']:.0f}; {mine[main]['bytes_per_connection'] / 1000:.1f} vs "
        f"{theirs['bytes_per_connection'] / 1000:.1f} KB per connection, kernel slab "
        f"{mine[main]['kernel_bytes_per_connection'] / 1000:.1f} KB (both ends){others}",
        figures={**mine, "baseline": theirs, "heartbeat_interval": interval, "ratios": ratios},
        client_cpu=client,
        rounds=(kept, 1),
    )
