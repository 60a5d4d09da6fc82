"""Benchmark 1: one console flood through vmws against a JSON relay of 64 KiB reads.

vmws: log into a VM's console and run ``yes``; the baseline: ``/relay``. The figure
is console-message payload received per second (JSON envelope included), with the
server's CPU share over the same window, so MB per CPU-second can be compared too.
vmws runs on each event loop; the default loop's figures are judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from loadtests.bench.common import (
    Bench,
    ClientMeter,
    ConsoleText,
    Measured,
    Outcome,
    client_peak,
    login,
    median,
    paired_ratio,
    progress,
    stop_flood,
    type_text,
    vmws_loops,
)
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect

__all__ = ["run"]

TARGET = 1.0  # in each quick run
TARGET_FULL = 1.2  # in a full run


async def _window(server: ServerProcess, conn: Connection, seconds: float) -> Measured:
    """(MB/s, server CPU share) over ``seconds`` of a running stream."""
    await asyncio.sleep(0.5)  # past the start: buffers filled, caches warm
    u0, b0, t0, client = server.usage(), conn.bytes_received, time.perf_counter(), ClientMeter()
    await asyncio.sleep(seconds)
    u1, b1, t1 = server.usage(), conn.bytes_received, time.perf_counter()
    if not conn.is_open:
        raise RuntimeError(f"the server closed the stream (code {conn.close_code})")
    return Measured(((b1 - b0) / (t1 - t0) / 1e6, (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0)), client.share())


async def _vmws_round(bench: Bench, server: ServerProcess, seconds: float) -> Measured:
    text = ConsoleText()
    conn = await connect(bench.console_url(server, 0), text.on_message)
    try:
        await login(conn, text)
        conn.on_message = None  # from here on frames are counted, not decoded
        await type_text(conn, "yes\r")
        return await _window(server, conn, seconds)
    finally:
        await stop_flood(conn, text)


async def _relay_round(server: ServerProcess, seconds: float) -> Measured:
    conn = await connect(f"{server.base_url}/relay")
    try:
        return await _window(server, conn, seconds)
    finally:
        conn.close()
        await asyncio.sleep(0.3)


async def run(
    out: Path, *, rounds: int, seconds: float, loops: tuple[str, ...] | None = None, target: float = TARGET
) -> Outcome:
    bench = Bench(out)
    loops = loops or vmws_loops()
    keys = [f"vmws[{loop}]" for loop in loops]
    results: dict[str, list[Measured]] = {k: [] for k in (*keys, "stdlib", "orjson")}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(bench.vmws("flood", 1, loop=loop)) for loop in loops]
        stdlib = stack.enter_context(bench.baseline("relay-stdlib"))
        fast = stack.enter_context(bench.baseline("relay-orjson", json_lib="orjson"))
        for r in range(rounds):
            for key, server in zip(keys, servers, strict=True):
                results[key].append(await _vmws_round(bench, server, seconds))
            results["stdlib"].append(await _relay_round(stdlib, seconds))
            results["orjson"].append(await _relay_round(fast, seconds))
            progress(
                f"flood round {r + 1}/{rounds}: "
                + ", ".join(
                    f"{k} {v[-1].figures[0]:.0f} MB/s at {v[-1].figures[1] * 100:.0f}% CPU (client {v[-1].client * 100:.0f}%)"
                    for k, v in results.items()
                )
            )
    mbps = {k: median([m.figures[0] for m in v]) for k, v in results.items()}
    cpu = {k: median([m.figures[1] for m in v]) for k, v in results.items()}
    per_core = {k: median([m.figures[0] / m.figures[1] for m in v if m.figures[1] > 0]) for k, v in results.items()}
    ratios = {k: paired_ratio(results[k], results["stdlib"]) for k in keys}
    ratio, kept = ratios[keys[0]]
    others = "".join(f"; on {k} ratio {ratios[k][0]:.2f}, {mbps[k]:.0f} MB/s" for k in keys[1:])
    return Outcome(
        "console_flood",
        ratio,
        target,
        higher=True,
        note=f"{keys[0]} {mbps[keys[0]]:.0f} MB/s, relay stdlib {mbps['stdlib']:.0f}, orjson {mbps['orjson']:.0f}; "
        f"per CPU-second {per_core[keys[0]]:.0f} vs {per_core['stdlib']:.0f} MB{others}",
        figures={
            "mb_per_s": mbps,
            "cpu_share": cpu,
            "mb_per_cpu_second": per_core,
            "ratios": {k: v[0] for k, v in ratios.items()},
        },
        client_cpu=client_peak([m for v in results.values() for m in v]),
        rounds=(kept, rounds),
    )
