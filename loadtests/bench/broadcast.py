"""Benchmark 4: many watchers of one VM: does every metrics message reach all, how late?

vmws: watchers of one VM with metrics every second; the baseline: ``/broadcast``
with one message built per second. A message's lag at a watcher is its arrival (wall
clock) minus its ``timestamp``; complete means every watcher got it, identical that
every copy was the same bytes (the message was serialised once).
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import contextlib
import time
from pathlib import Path

import orjson

from loadtests.bench.common import (
    Bench,
    ClientMeter,
    Measured,
    Outcome,
    client_peak,
    median,
    paired_ratio,
    percentile,
    progress,
    vmws_loops,
)
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect_many

__all__ = ["run"]

TARGET = 0.5
ABSOLUTE_MS = 50.0


class _Deliveries:
    """Arrivals recorded as they come (cheap: the client must not be what is measured),
    worked out after the window."""

    def __init__(self) -> None:
        self.recording = False
        self.offset = time.time() - time.perf_counter()
        self.arrivals: list[tuple[float, bytes]] = []

    def on_message(self, conn: Connection, payload: bytes, arrived: float) -> None:
        if self.recording and b'"metrics"' in payload[:40]:
            self.arrivals.append((arrived, payload))

    def results(self, receivers: int) -> tuple[float, int, int, bool]:
        """(p99 lag ms, complete messages, messages, identical copies)."""
        sent_at: dict[str, float] = {}
        lags: list[float] = []
        copies: dict[str, collections.Counter[bytes]] = collections.defaultdict(collections.Counter)
        for arrived, payload in self.arrivals:
            stamp = orjson.loads(payload)["timestamp"]
            if stamp not in sent_at:
                sent_at[stamp] = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(stamp[19:-1])
            lags.append((arrived + self.offset - sent_at[stamp]) * 1000)
            copies[stamp][payload] += 1
        # the first and last message may straddle the window's edges
        stamps = sorted(copies)[1:-1]
        complete = sum(1 for s in stamps if sum(copies[s].values()) == receivers)
        identical = all(len(copies[s]) == 1 for s in stamps)
        return percentile(lags, 99), complete, len(stamps), identical


async def _round(server: ServerProcess, urls: list[str], seconds: float) -> Measured:
    """(p99 lag ms, complete messages, messages, identical copies) for one server."""
    seen = _Deliveries()
    conns = await connect_many(urls, seen.on_message)
    try:
        await asyncio.sleep(1.5)
        seen.recording = True
        client = ClientMeter()
        await asyncio.sleep(seconds)
        seen.recording = False
        share = client.share()
        await asyncio.sleep(0.2)
        p99, complete, messages, identical = seen.results(len(conns))
        return Measured((p99, complete, messages, identical), share)
    finally:
        for conn in conns:
            conn.close()
        await asyncio.sleep(0.5)


async def run(
    out: Path, *, rounds: int, seconds: float, watchers: int, loops: tuple[str, ...] | None = None
) -> Outcome:
    bench = Bench(out)
    loops = loops or vmws_loops()
    keys = [f"vmws[{loop}]" for loop in loops]
    results: dict[str, list[Measured]] = {k: [] for k in (*keys, "baseline")}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(bench.vmws("broadcast", 1, metrics_interval=1.0, loop=loop)) for loop in loops]
        base = stack.enter_context(bench.baseline("broadcast", broadcast_interval=1.0))
        for r in range(rounds):
            for key, server in zip(keys, servers, strict=True):
                urls = [bench.monitor_url(server, 0) for _ in range(watchers)]
                results[key].append(await _round(server, urls, seconds))
            results["baseline"].append(await _round(base, [f"{base.base_url}/broadcast"] * watchers, seconds))
            progress(
                f"broadcast round {r + 1}/{rounds}: "
                + ", ".join(
                    f"{k} p99 {v[-1].figures[0]:.1f} ms, {v[-1].figures[1]:.0f}/{v[-1].figures[2]:.0f} complete"
                    f" (client {v[-1].client * 100:.0f}%)"
                    for k, v in results.items()
                )
            )
    p99 = {k: median([m.figures[0] for m in v]) for k, v in results.items()}
    main = keys[0]
    complete = all(m.figures[1] == m.figures[2] and m.figures[2] > 0 for m in results[main])
    identical = all(bool(m.figures[3]) for m in results[main])
    ratios = {k: paired_ratio(results[k], results["baseline"]) for k in keys}
    ratio, kept = ratios[main]
    others = "".join(f"; on {k} p99 {p99[k]:.1f} ms, ratio {ratios[k][0]:.2f}" for k in keys[1:])
    return Outcome(
        "broadcast_1k",
        ratio,
        TARGET,
        higher=False,
        extra_ok=complete and identical and p99[main] <= ABSOLUTE_MS,
        note=f"{main} p99 {p99[main]:.1f} vs {p99['baseline']:.1f} ms (limit {ABSOLUTE_MS:g} ms); "
        f"every message to all {watchers}: {complete}; serialised once: {identical}{others}",
        figures={
            "watchers": watchers,
            "p99_ms": p99,
            "complete": complete,
            "identical": identical,
            "ratios": {k: v[0] for k, v in ratios.items()},
        },
        client_cpu=client_peak([m for v in results.values() for m in v]),
        rounds=(kept, rounds),
    )
