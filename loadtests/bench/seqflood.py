"""Benchmark 5: the simulator's ``seq`` output against its ``yes``, through vmws.

Both are floods the simulator makes in the server's own process; ``yes`` costs it
nothing (one repeated line), ``seq`` a line per number. The figure is console
output per second (the VM's bytes, from the messages' ``offset``, so JSON escaping,
heavier on ``yes``, does not count), one VM, one viewer; rounds alternate the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from loadtests.bench.common import (
    Bench,
    ClientMeter,
    ConsoleText,
    Measured,
    Outcome,
    client_peak,
    counted,
    login,
    median,
    progress,
    stop_flood,
    type_text,
    vmws_loops,
)
from loadtests.procs import ServerProcess
from loadtests.wsclient import Connection, connect

__all__ = ["run", "COMMANDS"]

TARGET = 0.5
COMMANDS = {"yes": "yes", "seq": "seq 1000000000"}  # seq: a billion lines, never done in a round


_DIGITS = re.compile(rb"[0-9]+")


class _Offsets:
    """The console offset of the latest message (cheap: read from the payload's tail)."""

    def __init__(self) -> None:
        self.last = -1

    def on_message(self, conn: Connection, payload: bytes, arrived: float) -> None:
        # The tail is `"offset":N` then, since epochs, `,"epoch":"…"` and the braces.
        at = payload.rfind(b'"offset":', max(0, len(payload) - 96))
        if at >= 0:
            digits = _DIGITS.match(payload, at + 9)
            if digits:
                self.last = int(digits.group())


async def _flood(bench: Bench, server: ServerProcess, command: str, seconds: float) -> Measured:
    """(console MB/s, server CPU share) of ``command`` over ``seconds``."""
    text = ConsoleText()
    offsets = _Offsets()
    conn = await connect(bench.console_url(server, 0), text.on_message)
    try:
        await login(conn, text)
        conn.on_message = offsets.on_message
        await type_text(conn, command + "\r")
        await asyncio.sleep(0.5)
        o0, u0, t0, client = offsets.last, server.usage(), time.perf_counter(), ClientMeter()
        await asyncio.sleep(seconds)
        o1, u1, t1 = offsets.last, server.usage(), time.perf_counter()
        return Measured(((o1 - o0) / (t1 - t0) / 1e6, (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0)), client.share())
    finally:
        await stop_flood(conn, text)


async def run(out: Path, *, rounds: int, seconds: float, loops: tuple[str, ...] | None = None) -> Outcome:
    bench = Bench(out)
    loops = loops or vmws_loops()
    results: dict[str, dict[str, list[Measured]]] = {loop: {c: [] for c in COMMANDS} for loop in loops}
    with contextlib.ExitStack() as stack:
        servers = {loop: stack.enter_context(bench.vmws("seqflood", 1, loop=loop)) for loop in loops}
        for r in range(rounds):
            for loop, server in servers.items():
                for name, command in COMMANDS.items():
                    results[loop][name].append(await _flood(bench, server, command, seconds))
            progress(
                f"seq_flood round {r + 1}/{rounds}: "
                + ", ".join(
                    f"vmws[{loop}] {name} {v[-1].figures[0]:.0f} MB/s at {v[-1].figures[1] * 100:.0f}% CPU"
                    f" (client {v[-1].client * 100:.0f}%)"
                    for loop, by in results.items()
                    for name, v in by.items()
                )
            )
    ratios = {
        loop: [
            s.figures[0] / y.figures[0]
            for s, y in zip(by["seq"], by["yes"], strict=True)
            if counted((s.client, y.client)) and y.figures[0] > 0
        ]
        for loop, by in results.items()
    }
    mbps = {
        f"vmws[{loop}] {name}": median([m.figures[0] for m in v])
        for loop, by in results.items()
        for name, v in by.items()
    }
    main = loops[0]
    others = "".join(f"; on vmws[{loop}] ratio {median(ratios[loop]):.2f}" for loop in loops[1:])
    return Outcome(
        "seq_flood",
        median(ratios[main]),
        TARGET,
        higher=True,
        note=f"vmws[{main}] seq {mbps[f'vmws[{main}] seq']:.0f} vs yes {mbps[f'vmws[{main}] yes']:.0f} MB/s "
        f"of console output{others}",
        figures={"console_mb_per_s": mbps, "ratios": {loop: median(r) for loop, r in ratios.items()}},
        client_cpu=client_peak([m for by in results.values() for v in by.values() for m in v]),
        rounds=(len(ratios[main]), rounds),
    )
