"""Benchmark 6: how many typists one server core holds: consoles × 5 keys/s, stepped up
until p99 keystroke→echo passes 50 ms or a key is lost.

Each server (vmws on each loop, and the baseline's ``/echo``) climbs the same steps,
one short echo round (``loadtests.bench.echo``) per step, and stops at the first step
it does not hold (a step broken by p99 alone is run once more, the better round kept);
its figure is the last step it held. A step where the load generator
used over 80 % of its core says nothing about the server: the climb stops there and
its figure is marked a floor (``≥``), and the verdict is invalid unless both climbs
ended on the server.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench.common import CLIENT_LIMIT, Bench, Outcome, progress, vmws_loops
from loadtests.bench.echo import typing_round
from loadtests.procs import ServerProcess

__all__ = ["run", "LIMIT_MS", "TARGET"]

TARGET = 0.8
LIMIT_MS = 50.0


@dataclass(frozen=True)
class Climb:
    """One server's climb: the most consoles it held, and why it stopped."""

    held: int
    stopped_by: str  # "p99", "lost", "client" (not the server: a floor), "top" (held every step), "time"
    steps: tuple[tuple[int, float, float, float], ...]  # (consoles, p99 ms, server CPU, client CPU)

    @property
    def decided(self) -> bool:
        return self.stopped_by in ("p99", "lost", "top")

    def shown(self) -> str:
        return f"{self.held}" if self.stopped_by in ("p99", "lost") else f"≥ {self.held}"


async def _climb(
    name: str,
    server: ServerProcess,
    urls_for: Callable[[int], list[str]],
    steps: Sequence[int],
    rate: float,
    seconds: float,
    deadline: float,
) -> Climb:
    held = 0
    seen: list[tuple[int, float, float, float]] = []
    for consoles in steps:
        if time.monotonic() > deadline:
            return Climb(held, "time", tuple(seen))
        m = await typing_round(server, urls_for(consoles), rate, seconds)
        if m.figures[0] > LIMIT_MS and not m.figures[2] and m.client <= CLIENT_LIMIT:
            # a step broken by p99 alone is run once more, the better round kept: on a
            # shared machine one neighbour's burst must not end the climb (as capacity's --confirm)
            again = await typing_round(server, urls_for(consoles), rate, seconds)
            if again.figures[0] < m.figures[0]:
                m = again
        p99, cpu, lost = m.figures
        seen.append((consoles, p99, cpu, m.client))
        progress(
            f"saturation {name}: {consoles} consoles p99 {p99:.1f} ms at {cpu * 100:.0f}% CPU, "
            f"{lost:.0f} lost (client {m.client * 100:.0f}%)"
        )
        if m.client > CLIENT_LIMIT:
            return Climb(held, "client", tuple(seen))
        if lost:
            return Climb(held, "lost", tuple(seen))
        if p99 > LIMIT_MS:
            return Climb(held, "p99", tuple(seen))
        held = consoles
    return Climb(held, "top", tuple(seen))


async def run(
    out: Path,
    *,
    steps: Sequence[int],
    seconds: float,
    budget: float,
    rate: float = 5.0,
    loops: tuple[str, ...] | None = None,
) -> Outcome:
    """``budget``: seconds each climb may start steps in (the climb in progress ends)."""
    bench = Bench(out)
    loops = loops or vmws_loops()
    climbs: dict[str, Climb] = {}
    with contextlib.ExitStack() as stack:
        for loop in loops:
            server = stack.enter_context(bench.vmws("saturation", max(steps), loop=loop))
            climbs[f"vmws[{loop}]"] = await _climb(
                f"vmws[{loop}]",
                server,
                lambda n, s=server: [bench.console_url(s, i) for i in range(n)],
                steps,
                rate,
                seconds,
                time.monotonic() + budget,
            )
            server.stop()
        base = stack.enter_context(bench.baseline("saturation"))
        climbs["baseline"] = await _climb(
            "baseline", base, lambda n: [f"{base.base_url}/echo"] * n, steps, rate, seconds, time.monotonic() + budget
        )
    main = f"vmws[{loops[0]}]"
    mine, theirs = climbs[main], climbs["baseline"]
    ratio = mine.held / theirs.held if theirs.held else float("nan")
    decided = mine.decided and theirs.decided
    others = "".join(f"; {k} {c.shown()} ({c.stopped_by})" for k, c in climbs.items() if k not in (main, "baseline"))
    return Outcome(
        "console_echo_saturation",
        ratio,
        TARGET,
        higher=True,
        note=f"{main} held {mine.shown()} consoles ({mine.stopped_by}), baseline {theirs.shown()} "
        f"({theirs.stopped_by}) at {rate:g} keys/s, p99 ≤ {LIMIT_MS:g} ms{others}",
        figures={k: {"held": c.held, "stopped_by": c.stopped_by, "steps": c.steps} for k, c in climbs.items()},
        client_cpu=max((s[3] for c in climbs.values() for s in c.steps if s[3] <= CLIENT_LIMIT), default=float("nan")),
        rounds=(int(mine.decided) + int(theirs.decided), 2) if decided else (0, 2),
    )
