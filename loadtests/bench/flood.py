"""Benchmark 1: one console flood through vmws against a JSON relay of 64 KiB reads.

vmws: log into a VM's console and run ``yes``; the baseline: ``/relay``. The figure
is console-message payload received per second (JSON envelope included), with the
server's CPU share over the same window, so MB per CPU-second can be compared too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from loadtests.bench.common import Bench, ConsoleText, Outcome, login, median, progress, type_text
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect

__all__ = ["run"]

TARGET = 1.0


async def _window(server: ServerProcess, conn: Connection, seconds: float) -> tuple[float, float]:
    """(MB/s, server CPU share) over ``seconds`` of a running stream."""
    await asyncio.sleep(0.5)  # past the start: buffers filled, caches warm
    u0, b0, t0 = server.usage(), conn.bytes_received, time.perf_counter()
    await asyncio.sleep(seconds)
    u1, b1, t1 = server.usage(), conn.bytes_received, time.perf_counter()
    if not conn.is_open:
        raise RuntimeError(f"the server closed the stream (code {conn.close_code})")
    return (b1 - b0) / (t1 - t0) / 1e6, (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0)


async def _vmws_round(bench: Bench, server: ServerProcess, seconds: float) -> tuple[float, float]:
    text = ConsoleText()
    conn = await connect(bench.console_url(server, 0), text.on_message)
    try:
        await login(conn, text)
        conn.on_message = None  # from here on frames are counted, not decoded
        await type_text(conn, "yes\r")
        return await _window(server, conn, seconds)
    finally:
        # stop the flood and see the prompt before closing: a socket closed with unread
        # data is reset, and the reset can discard the ^C before the server reads it
        text.text = ""
        conn.on_message = text.on_message
        await type_text(conn, "\x03")
        await text.expect("$ ", timeout=30)
        conn.close()
        await asyncio.sleep(0.3)


async def _relay_round(server: ServerProcess, seconds: float) -> tuple[float, float]:
    conn = await connect(f"{server.base_url}/relay")
    try:
        return await _window(server, conn, seconds)
    finally:
        conn.close()
        await asyncio.sleep(0.3)


async def run(out: Path, *, rounds: int, seconds: float) -> Outcome:
    bench = Bench(out)
    results: dict[str, list[tuple[float, float]]] = {"vmws": [], "stdlib": [], "orjson": []}
    with bench.vmws("flood", 1) as vmws, bench.baseline("relay-stdlib") as stdlib, \
            bench.baseline("relay-orjson", json_lib="orjson") as fast:
        for r in range(rounds):
            results["vmws"].append(await _vmws_round(bench, vmws, seconds))
            results["stdlib"].append(await _relay_round(stdlib, seconds))
            results["orjson"].append(await _relay_round(fast, seconds))
            progress(f"flood round {r + 1}/{rounds}: " + ", ".join(
                f"{k} {v[-1][0]:.0f} MB/s at {v[-1][1] * 100:.0f}% CPU" for k, v in results.items()))
    mbps = {k: median([m for m, _ in v]) for k, v in results.items()}
    cpu = {k: median([c for _, c in v]) for k, v in results.items()}
    per_core = {k: median([m / c for m, c in v if c > 0]) for k, v in results.items()}
    # rounds ran back to back: the median of per-round ratios cancels slow drifts
    # of a shared machine better than a ratio of medians
    ratio = median([m / s for (m, _), (s, _) in zip(results["vmws"], results["stdlib"])])
    return Outcome(
        "console_flood", ratio, TARGET, higher=True,
        note=f"vmws {mbps['vmws']:.0f} MB/s, relay stdlib {mbps['stdlib']:.0f}, orjson {mbps['orjson']:.0f}; "
             f"per CPU-second {per_core['vmws']:.0f} vs {per_core['stdlib']:.0f} MB",
        figures={"mb_per_s": mbps, "cpu_share": cpu, "mb_per_cpu_second": per_core},
    )
