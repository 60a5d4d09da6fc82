"""``python -m simulator``: check a scenario, fast-forward it, or run the scale benchmark.

    python -m simulator check FILE [FILE...]
    python -m simulator run FILE [--until 10m] [--seed 7] [--console VM]... [--all]
    python -m simulator bench [--vms 10000] [--no-serve]

``check`` validates (errors name the file, line and field; exit status 1). ``run``
plays the scenario on a virtual clock without a server, printing the event log as it
happens and the final state (and, with ``--console``, what that VM's serial console
printed): ten simulated minutes take well under a second. ``bench`` measures what
issue 3 asks of 10,000 VMs (see ``simulator/bench.py``).
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Sequence

from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.eventlog import Entry, format_elapsed
from simulator.fleet import FleetSpec
from simulator.scenario import ScenarioError, load_scenario
from simulator.transcript import Transcript
from vmws.backend import VMStatus
from vmws.durations import duration_argument

__all__ = ["main"]

_TRANSCRIPT_LIMIT = 1 << 20  # bytes of console output kept per VM for --console
_READS_PER_STEP = 4  # a flood is read this many chunks per clock step, not forever


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="The vmws VM simulator.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate scenario files")
    check.add_argument("files", nargs="+", metavar="FILE")
    run = sub.add_parser("run", help="play a scenario on a virtual clock and print what happens")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--until", type=duration_argument, default=600.0, help="simulated time to run (default 10m)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument(
        "--console", action="append", default=[], metavar="VM", help="print what this VM's console showed (repeatable)"
    )
    run.add_argument("--all", action="store_true", help="list every VM's final state, however many")
    bench = sub.add_parser("bench", help="measure start time, memory and sampling cost of a big fleet")
    bench.add_argument("--vms", type=int, default=10_000, help="fleet size (default 10000)")
    bench.add_argument("--no-serve", action="store_true", help="skip the `vmws serve` start-up measurement")
    return parser


def _summary(fleet: FleetSpec) -> str:
    counts = collections.Counter(vm.status.value for vm in fleet.vms)
    statuses = ", ".join(f"{counts[s.value]} {s.value}" for s in VMStatus if counts[s.value])
    return f"{len(fleet.vms)} VMs ({statuses}), {len(fleet.events)} timeline events"


def _check(files: Sequence[str]) -> int:
    status = 0
    for path in files:
        try:
            fleet = load_scenario(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        name = f" '{fleet.name}'" if fleet.name else ""
        print(f"{path}: ok: scenario{name}: {_summary(fleet)}")
    return status


def _final_table(sim: Simulator, start: float, show_all: bool) -> list[str]:
    infos = sim.list()
    initial = {vm.name: vm.status for vm in sim.fleet.vms}
    changed = [i for i in infos if i.status is not initial[i.name] or i.last_state_change >= start]
    shown = infos if show_all or len(infos) <= 50 else changed
    lines: list[str] = []
    counts = collections.Counter(i.status.value for i in infos)
    lines.append("final state: " + ", ".join(f"{counts[s.value]} {s.value}" for s in VMStatus if counts[s.value]))
    if shown is not infos:
        lines.append(f"(the {len(changed)} VMs that changed; --all lists all {len(infos)})")
    for info in shown:
        since = format_elapsed(info.last_state_change - start) if info.last_state_change >= start else "(from start)"
        lines.append(f"  {info.name:<20} {info.status.value:<10} since {since:<14} uptime {info.uptime:10.1f} s")
    return lines


def _run(path: str, until: float, seed: int, consoles: Sequence[str], show_all: bool) -> int:
    try:
        fleet = load_scenario(path)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 1
    clock = VirtualClock()
    start = clock.time()
    sim = Simulator(clock, fleet, seed=seed, log_limit=1)
    names = set(sim.names())
    for name in consoles:
        if name not in names:
            print(f"python -m simulator: error: --console {name}: no such VM in {path}", file=sys.stderr)
            return 2
    name = f" '{fleet.name}'" if fleet.name else ""
    print(f"scenario{name}: {_summary(fleet)}; seed {seed}; until {format_elapsed(until)}")

    def show(entry: Entry) -> None:
        print(entry.line())

    sim.events.subscribe(show)
    transcripts = {n: Transcript(sim, n, limit=_TRANSCRIPT_LIMIT, reads=_READS_PER_STEP) for n in consoles}
    end = start + until
    while True:
        for transcript in transcripts.values():
            transcript.read()
        deadline = clock.next_deadline()
        if deadline is None or deadline > end:
            break
        clock.advance(max(0.0, deadline - clock.time()))
    clock.advance(max(0.0, end - clock.time()))
    for transcript in transcripts.values():
        transcript.read()
    for line in _final_table(sim, start, show_all):
        print(line)
    for transcript in transcripts.values():
        print(f"--- console of {transcript.name} ---")
        print(transcript.text(), end="")
        print(f"\n--- end of console of {transcript.name} ---")
    sim.halt()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return _check(args.files)
    if args.command == "run":
        return _run(args.file, args.until, args.seed, args.console, args.all)
    from simulator.bench import run_bench  # imports the server side; only for bench

    return run_bench(args.vms, serve=not args.no_serve)


if __name__ == "__main__":
    sys.exit(main())
