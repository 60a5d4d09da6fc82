"""``python -m loadtests.bench [--quick] [--only NAME ...]``: run the benchmarks, print
their figures, and end with one line per target: ``NAME ratio=R target=T OK|MISS``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from loadtests.bench import broadcast, echo, flood, idle, saturation, screen_relay, seqflood
from loadtests.bench.common import CLIENT_CPU, Outcome, vmws_loops
from loadtests.procs import pin_to, raise_nofile
from vmws.loops import LOOPS

NAMES = (
    "console_flood",
    "console_echo",
    "idle_10k",
    "broadcast_1k",
    "seq_flood",
    "console_echo_saturation",
    "screen_relay",
)
SATURATION_STEPS = (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000)
SATURATION_STEPS_QUICK = (250, 500, 750, 1000, 1500, 2000, 3000)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def load() -> str:
    """The machine's load averages: on a shared machine, part of every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


async def _run(names: list[str], quick: bool, out: Path, loops: tuple[str, ...]) -> list[Outcome]:
    outcomes = []
    for name in names:
        print(f"== {name} ({load()})", file=sys.stderr, flush=True)
        if name == "console_flood":
            outcome = await flood.run(
                out,
                rounds=3 if quick else 7,
                seconds=2 if quick else 4,
                loops=loops,
                target=flood.TARGET if quick else flood.TARGET_FULL,
            )
        elif name == "console_echo":
            outcome = await echo.run(
                out, rounds=1 if quick else 5, seconds=5 if quick else 10, consoles=1000, loops=loops
            )
        elif name == "idle_10k":
            outcome = await idle.run(out, connections=10000, interval=5.0 if quick else 30.0, loops=loops)
        elif name == "broadcast_1k":
            outcome = await broadcast.run(
                out, rounds=1 if quick else 5, seconds=6 if quick else 10, watchers=1000, loops=loops
            )
        elif name == "seq_flood":
            outcome = await seqflood.run(out, rounds=2 if quick else 5, seconds=2 if quick else 4, loops=loops)
        elif name == "screen_relay":
            outcome = await screen_relay.run(out, rounds=3 if quick else 5, seconds=3 if quick else 5)
        else:
            outcome = await saturation.run(
                out,
                steps=SATURATION_STEPS_QUICK if quick else SATURATION_STEPS,
                seconds=3 if quick else 8,
                budget=75 if quick else 400,
                loops=loops,
            )
        print(f"   {outcome.line()}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes


def _event_loop_run(coro: Any) -> Any:
    # uvloop spends a third of asyncio's CPU per socket event: the client stays out of
    # the figures (a thousand sockets read per broadcast). Plain asyncio if missing.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (under ten minutes)")
    parser.add_argument("--only", action="append", choices=NAMES, help="run only this benchmark (repeatable)")
    parser.add_argument(
        "--loop",
        action="append",
        choices=LOOPS,
        help="measure vmws on this event loop only (repeatable; default: each one importable, "
        "the one vmws serve picks first and judged)",
    )
    parser.add_argument("--out", help="folder for server logs and fleets (default: a temporary one)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    raise_nofile()
    pin_to(CLIENT_CPU)  # servers run on CPU 0
    names = args.only or list(NAMES)
    loops = tuple(args.loop) if args.loop else vmws_loops()
    with tempfile.TemporaryDirectory(prefix="vmws-bench-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(f"vmws benchmarks on {machine()}; {load()}; vmws on {', '.join(loops)}", flush=True)
        outcomes = _event_loop_run(_run(names, args.quick, out, loops))
    report: dict[str, Any] = {
        "machine": machine(),
        "load_after": load(),
        "loops": loops,
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "results": {
            o.name: {
                "ratio": o.ratio,
                "target": o.target,
                "ok": o.ok,
                "invalid": o.invalid,
                "client_cpu": o.client_cpu,
                "rounds_counted": o.rounds,
                "note": o.note,
                "figures": o.figures,
            }
            for o in outcomes
        },
    }
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"done; {load()}")
    for outcome in outcomes:
        print(outcome.line())
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
