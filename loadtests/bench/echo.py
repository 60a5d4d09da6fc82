"""Benchmark 2: many consoles typing: p99 keystroke→echo and the server's CPU.

vmws: one console per VM (each at its login prompt, which echoes what is typed); the
baseline: ``/echo``. Every connection types one key every ``1/rate`` seconds, phases
spread evenly; a key's latency runs from its send to the console message that
echoes it (keys are matched in order, one character each).
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import orjson

from loadtests.bench.common import Bench, Outcome, median, percentile, progress
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect_many

__all__ = ["run"]

P99_TARGET = 3.0
CPU_TARGET = 2.0
_KEYS = [orjson.dumps({"type": "console_input", "data": {"content": c}}) for c in "abcdefghijklmnopqrstuvwxyz"]


class _Typing:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.recording = False

    def on_message(self, conn: Connection, payload: bytes, arrived: float) -> None:
        if b'"console"' not in payload[:40] or not self.sent_by(conn):
            return
        # each connection's keys wait in a deque of (sent at, inside the window); one
        # message may echo several keys when the server was behind (it coalesces)
        keys: collections.deque[tuple[float, bool]] = conn.user  # type: ignore[assignment]
        for _ in range(min(len(keys), len(orjson.loads(payload)["data"]["content"]))):
            sent, counted = keys.popleft()
            if counted:
                self.latencies.append(arrived - sent)

    @staticmethod
    def sent_by(conn: Connection) -> bool:
        return bool(conn.user)


async def _round(server: ServerProcess, urls: list[str], rate: float, seconds: float) -> tuple[float, float, int]:
    """(p99 ms, server CPU share, keys lost) for one server."""
    typing = _Typing()
    conns = await connect_many(urls, typing.on_message)
    try:
        for conn in conns:
            conn.user = collections.deque()
        await asyncio.sleep(1.0)  # scrollback replays delivered before the first key
        period = 1.0 / rate
        start = time.perf_counter() + 0.05
        due = [start + period * i / len(conns) for i in range(len(conns))]
        warmup_end = start + 1.0
        end = warmup_end + seconds
        u0 = None
        sent_total = 0
        key = 0
        turn = 0  # due times stay in list order: each connection's next key is a period later
        while True:
            now = time.perf_counter()
            if u0 is None and now >= warmup_end:
                u0, t0 = server.usage(), now
                typing.recording = True
            if now >= end:
                break
            while due[turn] <= now:
                conn = conns[turn]
                conn.user.append((time.perf_counter(), typing.recording))  # type: ignore[attr-defined]
                conn.send_text(_KEYS[key % 26])
                key += 1
                due[turn] += period
                turn = (turn + 1) % len(conns)
                if typing.recording:
                    sent_total += 1
            await asyncio.sleep(0.002)
        u1, t1 = server.usage(), time.perf_counter()
        typing.recording = False
        # late echoes still count (as late); a key is lost only if none comes in 5 s
        drain_end = time.perf_counter() + 5.0
        while len(typing.latencies) < sent_total and time.perf_counter() < drain_end:
            await asyncio.sleep(0.05)
        assert u0 is not None
        lost = max(0, sent_total - len(typing.latencies))
        return percentile(typing.latencies, 99) * 1000, (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0), lost
    finally:
        for conn in conns:
            conn.close()
        await asyncio.sleep(0.5)


async def run(out: Path, *, rounds: int, seconds: float, consoles: int, rate: float = 5.0) -> Outcome:
    bench = Bench(out)
    results: dict[str, list[tuple[float, float, int]]] = {"vmws": [], "baseline": []}
    with bench.vmws("echo", consoles) as vmws, bench.baseline("echo") as base:
        for r in range(rounds):
            urls = [bench.console_url(vmws, i) for i in range(consoles)]
            results["vmws"].append(await _round(vmws, urls, rate, seconds))
            results["baseline"].append(await _round(base, [f"{base.base_url}/echo"] * consoles, rate, seconds))
            progress(f"echo round {r + 1}/{rounds}: " + ", ".join(
                f"{k} p99 {v[-1][0]:.2f} ms at {v[-1][1] * 100:.0f}% CPU, {v[-1][2]} lost"
                for k, v in results.items()))
    p99 = {k: median([p for p, _, _ in v]) for k, v in results.items()}
    cpu = {k: median([c for _, c, _ in v]) for k, v in results.items()}
    lost = {k: sum(n for _, _, n in v) for k, v in results.items()}
    # median of per-round ratios: each pair ran back to back on the same machine state
    p99_ratio = median([m[0] / b[0] for m, b in zip(results["vmws"], results["baseline"])])
    cpu_ratio = median([m[1] / b[1] for m, b in zip(results["vmws"], results["baseline"])])
    return Outcome(
        "console_echo", p99_ratio, P99_TARGET, higher=False,
        extra_ok=cpu_ratio <= CPU_TARGET and lost["vmws"] == 0,
        note=f"p99 {p99['vmws']:.2f} vs {p99['baseline']:.2f} ms; cpu ratio={cpu_ratio:.2f} target={CPU_TARGET:g} "
             f"({cpu['vmws'] * 100:.0f}% vs {cpu['baseline'] * 100:.0f}% of a core); keys lost {lost['vmws']}",
        figures={"consoles": consoles, "keys_per_s": rate, "p99_ms": p99, "cpu_share": cpu,
                 "cpu_ratio": cpu_ratio, "lost": lost},
    )
