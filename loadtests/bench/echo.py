"""Benchmark 2: many consoles typing: p99 keystroke→echo and the server's CPU.

vmws: one console per VM (each at its login prompt, which echoes what is typed); the
baseline: ``/echo``. Every connection types one key every ``1/rate`` seconds, phases
spread evenly; a key's latency runs from its send to the console message that
echoes it (keys are matched in order, one character each).
"""

from __future__ import annotations

import asyncio
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

__all__ = ["run", "typing_round"]

P99_TARGET = 2.0
CPU_TARGET = 1.1
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


async def typing_round(server: ServerProcess, urls: list[str], rate: float, seconds: float) -> Measured:
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
        client = ClientMeter()
        sent_total = 0
        key = 0
        turn = 0  # due times stay in list order: each connection's next key is a period later
        while True:
            now = time.perf_counter()
            if u0 is None and now >= warmup_end:
                u0, t0, client = server.usage(), now, ClientMeter()
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
        u1, t1, client_share = server.usage(), time.perf_counter(), client.share()
        typing.recording = False
        # late echoes still count (as late); a key is lost only if none comes in 5 s
        drain_end = time.perf_counter() + 5.0
        while len(typing.latencies) < sent_total and time.perf_counter() < drain_end:
            await asyncio.sleep(0.05)
        assert u0 is not None
        lost = max(0, sent_total - len(typing.latencies))
        return Measured(
            (percentile(typing.latencies, 99) * 1000, (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0), lost), client_share
        )
    finally:
        for conn in conns:
            conn.close()
        await asyncio.sleep(0.5)


async def run(
    out: Path, *, rounds: int, seconds: float, consoles: int, rate: float = 5.0, loops: tuple[str, ...] | None = None
) -> Outcome:
    bench = Bench(out)
    loops = loops or vmws_loops()
    keys = [f"vmws[{loop}]" for loop in loops]
    results: dict[str, list[Measured]] = {k: [] for k in (*keys, "baseline")}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(bench.vmws("echo", consoles, loop=loop)) for loop in loops]
        base = stack.enter_context(bench.baseline("echo"))
        for r in range(rounds):
            for key, server in zip(keys, servers, strict=True):
                urls = [bench.console_url(server, i) for i in range(consoles)]
                results[key].append(await typing_round(server, urls, rate, seconds))
            results["baseline"].append(await typing_round(base, [f"{base.base_url}/echo"] * consoles, rate, seconds))
            progress(
                f"echo round {r + 1}/{rounds}: "
                + ", ".join(
                    f"{k} p99 {v[-1].figures[0]:.2f} ms at {v[-1].figures[1] * 100:.0f}% CPU, {v[-1].figures[2]:.0f} lost"
                    f" (client {v[-1].client * 100:.0f}%)"
                    for k, v in results.items()
                )
            )
    p99 = {k: median([m.figures[0] for m in v]) for k, v in results.items()}
    cpu = {k: median([m.figures[1] for m in v]) for k, v in results.items()}
    lost = {k: sum(m.figures[2] for m in v) for k, v in results.items()}
    p99_ratios = {k: paired_ratio(results[k], results["baseline"], 0) for k in keys}
    cpu_ratios = {k: paired_ratio(results[k], results["baseline"], 1)[0] for k in keys}
    main = keys[0]
    p99_ratio, kept = p99_ratios[main]
    cpu_ratio = cpu_ratios[main]
    others = "".join(
        f"; on {k} p99 {p99[k]:.2f} ms, ratio {p99_ratios[k][0]:.2f}, cpu ratio {cpu_ratios[k]:.2f}" for k in keys[1:]
    )
    return Outcome(
        "console_echo",
        p99_ratio,
        P99_TARGET,
        higher=False,
        extra_ok=cpu_ratio <= CPU_TARGET and lost[main] == 0,
        note=f"{main} p99 {p99[main]:.2f} vs {p99['baseline']:.2f} ms; cpu ratio={cpu_ratio:.2f} target={CPU_TARGET:g} "
        f"({cpu[main] * 100:.0f}% vs {cpu['baseline'] * 100:.0f}% of a core); keys lost {lost[main]:.0f}{others}",
        figures={
            "consoles": consoles,
            "keys_per_s": rate,
            "p99_ms": p99,
            "cpu_share": cpu,
            "p99_ratios": {k: v[0] for k, v in p99_ratios.items()},
            "cpu_ratios": cpu_ratios,
            "lost": lost,
        },
        client_cpu=client_peak([m for v in results.values() for m in v]),
        rounds=(kept, rounds),
    )
