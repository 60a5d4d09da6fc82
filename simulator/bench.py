"""The scale benchmark (``python -m simulator bench``): what 10,000 simulated VMs cost.

Issue 3's targets, each measured here and printed with the machine it ran on:

- ``vmws serve --scenario`` with 10,000 VMs is serving (its banner printed) in < 5 s,
  timed from process start, with a one-VM scenario alongside for comparison;
- < 2 KiB of resident memory per idle VM beyond the baseline: the server's RSS with
  N VMs minus its RSS with one, divided by N - 1 (and, in process, what tracemalloc
  counts for the fleet's specs and machines);
- sampling every VM's metrics once takes < 100 ms (the engine, and through the async
  ``SimulatorBackend`` as the hub calls it);
- issue 14's metrics history: what the fleet's sweep costs (sampling every VM into its
  history, then a summary for one fleet socket), and the history's memory per VM, just
  after start-up (one sample each) and at its bounds (10 min of 2 s samples and 24 h of
  1-minute averages; measured on a few VMs filled to the bounds, times the fleet).

The fleet is written both as one templated ``[[vm]]`` (``vm-{00001..10000}``) and as
10,000 plain ``[[vm]]`` tables (what ``loadtests/fleet.py`` writes). A benchmark, not
a test: it reports figures and whether each meets its target; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.scenario import load_scenario

__all__ = [
    "run_bench",
    "machine_description",
    "ServeFigures",
    "Serving",
    "serving",
    "measure_serve",
    "write_fleet",
    "SECRET",
]

SECRET = "bench-secret-" + "x" * 32  # what `serving` passes as VMWS_JWT_SECRET
_START_TARGET = 5.0
_BYTES_PER_VM_TARGET = 2048
_SAMPLE_TARGET = 0.100


@dataclass(frozen=True, slots=True)
class ServeFigures:
    seconds_to_banner: float
    rss_bytes: int


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{model}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def write_fleet(directory: Path, count: int, templated: bool) -> Path:
    path = directory / f"fleet-{count}-{'template' if templated else 'plain'}.toml"
    width = len(str(count))
    if templated:
        text = f'[[vm]]\nname = "vm-{{{1:0{width}d}..{count}}}"\nmemory_mib = 1024\nvcpus = 1\n'
    else:
        text = "".join(
            f'[[vm]]\nname = "vm-{i:0{width}d}"\nmemory_mib = 1024\nvcpus = 1\n\n' for i in range(1, count + 1)
        )
    path.write_text(text, encoding="utf-8")
    return path


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/PID/status")


@dataclass(frozen=True, slots=True)
class Serving:
    """A running ``vmws serve``: its process, port and how long it took to serve."""

    proc: subprocess.Popen[bytes]
    port: int
    seconds_to_banner: float


@contextlib.contextmanager
def serving(scenario: Path, *extra: str, timeout: float = 60.0) -> Iterator[Serving]:
    """``vmws serve --scenario`` on a free port of 127.0.0.1 until the block ends (SIGTERM)."""
    # The secret through the environment, never argv (visible in `ps`).
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMWS_")} | {"VMWS_JWT_SECRET": SECRET}
    command = [
        sys.executable,
        "-m",
        "vmws",
        "serve",
        "--scenario",
        str(scenario),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        *extra,
    ]
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        deadline = began + timeout
        line = b""
        while b"serving" not in line:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or proc.poll() is not None:
                raise RuntimeError(f"vmws serve did not print its banner within {timeout:g} s")
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if ready:
                line = proc.stdout.readline()
        port = int(line.rsplit(b":", 1)[1])
        yield Serving(proc, port, time.perf_counter() - began)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def measure_serve(scenario: Path) -> ServeFigures:
    """Time from process start until ``vmws serve`` is serving, then its resident memory."""
    with serving(scenario) as served:
        time.sleep(0.5)  # let start-up garbage settle before reading RSS
        return ServeFigures(served.seconds_to_banner, _rss(served.proc.pid))


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _in_process(path: Path, count: int) -> list[str]:
    lines: list[str] = []
    began = time.perf_counter()
    fleet = load_scenario(path)
    parsed = time.perf_counter() - began
    began = time.perf_counter()
    sim = Simulator(VirtualClock(), fleet, seed=1)
    built = time.perf_counter() - began
    sim.halt()
    del sim
    gc.collect()
    tracemalloc.start()  # a second build, counted (tracemalloc slows it down)
    sim = Simulator(VirtualClock(), fleet, seed=1)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines.append(
        f"  parse {parsed * 1000:.0f} ms, build {built * 1000:.0f} ms, "
        f"{held / count:.0f} B per VM held by the machines (tracemalloc)"
    )
    names = sim.names()
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        for name in names:
            sim.sample(name)
        timings.append(time.perf_counter() - began)
    best = min(timings)
    lines.append(
        f"  sample all {count} (engine): best {best * 1000:.1f} ms of 3, "
        f"first {timings[0] * 1000:.1f} ms [{_verdict(timings[0] < _SAMPLE_TARGET)} < 100 ms]"
    )
    lines.append(f"  sample all {count} (SimulatorBackend, awaited): {_backend_sampling(path) * 1000:.1f} ms")
    sim.halt()
    lines += _history_figures(path, count)
    return lines


def _history_figures(path: Path, count: int) -> list[str]:
    """The fleet sweep's time and the metrics history's memory (vmws/fleet.py, vmws/history.py)."""
    from vmws.backends.simulator import SimulatorBackend
    from vmws.fleet import Fleet
    from vmws.history import HistoryLimits, MetricsHistory

    limits = HistoryLimits.for_interval(2.0)

    class Listener:
        bytes_sent = 0

        def send(self, text: str, *, droppable: bool = False) -> None:
            self.bytes_sent += len(text)

    async def sweeps() -> tuple[list[float], int, int]:
        backend = SimulatorBackend(VirtualClock(), scenario=path, seed=1)
        await backend.start()
        history = MetricsHistory(limits)
        wall = [1_000_000_000.0]  # moves 5 s per sweep, as at the default interval
        fleet = Fleet(backend, history, 5.0, lambda: wall[0], lambda name: False)
        gc.collect()
        tracemalloc.start()
        await fleet.sweep()  # the first sweep: every VM's history made
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        listener = Listener()
        from vmws.auth import Principal
        from vmws.fleet import FleetFilter

        fleet.join(listener, FleetFilter.of(Principal("bench", frozenset(), None, 0.0), None))
        timings = []
        for _ in range(3):
            wall[0] += 5.0
            began = time.perf_counter()
            await fleet.sweep()
            timings.append(time.perf_counter() - began)
        await backend.close()
        return timings, held, listener.bytes_sent // 3

    timings, first, summary_bytes = asyncio.run(sweeps())
    full = MetricsHistory(limits)
    few = 20
    gc.collect()
    tracemalloc.start()
    from vmws.backend import MetricsSample

    for i in range(few):
        for minute in range(limits.minute_count + 10):
            full.record(
                f"vm-{i}",
                MetricsSample(0.0, 1.5, 2**29, 2**30, minute, minute, minute, minute),
                1_000_000_020.0 + 60 * minute,
            )
        for j in range(limits.recent_capacity):
            full.record(
                f"vm-{i}",
                MetricsSample(0.0, 1.5, 2**29, 2**30, 10**9 + j, 0, 0, 0),
                1_000_000_020.0 + 60 * (limits.minute_count + 10) + 2 * j,
            )
    held_full, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_vm_full = held_full / few
    return [
        f"  fleet sweep of {count} (sample each into its history, one summary of {summary_bytes / 1024:.0f} KiB): "
        f"best {min(timings) * 1000:.0f} ms of 3 (every 5 s by default: {min(timings) / 5 * 100:.1f}% of one core)",
        f"  metrics history after the first sweep: {first / count:.0f} B per VM (tracemalloc)",
        f"  metrics history at its bounds ({limits.recent_capacity} recent samples + {limits.minute_count} minutes): "
        f"{per_vm_full / 1024:.0f} KiB per VM, {per_vm_full * count / 2**20:.0f} MiB for {count} VMs",
    ]


def _backend_sampling(path: Path) -> float:
    from vmws.backends.simulator import SimulatorBackend

    async def measure() -> float:
        backend = SimulatorBackend(VirtualClock(), scenario=path, seed=1)
        await backend.start()
        names = [info.name for info in await backend.list()]
        began = time.perf_counter()
        for name in names:
            await backend.sample(name)
        elapsed = time.perf_counter() - began
        await backend.close()
        return elapsed

    return asyncio.run(measure())


def run_bench(count: int = 10_000, serve: bool = True) -> int:
    if count < 2:
        print("python -m simulator bench: error: --vms must be at least 2", file=sys.stderr)
        return 2
    print(f"machine: {machine_description()}")
    print(f"fleet: {count} idle running VMs (1 GiB, 1 vCPU each)")
    with tempfile.TemporaryDirectory(prefix="vmws-bench-") as tmp:
        directory = Path(tmp)
        templated = write_fleet(directory, count, templated=True)
        plain = write_fleet(directory, count, templated=False)
        one = write_fleet(directory, 1, templated=True)
        if serve:
            base = measure_serve(one)
            print(
                f"vmws serve, 1 VM: serving after {base.seconds_to_banner:.2f} s, RSS {base.rss_bytes / 2**20:.1f} MiB"
            )
            for label, path in (("templated [[vm]]", templated), ("plain [[vm]] tables", plain)):
                figures = measure_serve(path)
                per_vm = (figures.rss_bytes - base.rss_bytes) / (count - 1)
                print(
                    f"vmws serve, {count} VMs ({label}): serving after {figures.seconds_to_banner:.2f} s "
                    f"[{_verdict(figures.seconds_to_banner < _START_TARGET)} < 5 s], "
                    f"RSS {figures.rss_bytes / 2**20:.1f} MiB, {per_vm:.0f} B per VM beyond the baseline "
                    f"[{_verdict(per_vm < _BYTES_PER_VM_TARGET)} < 2048 B]"
                )
        print("in process:")
        for line in _in_process(templated, count):
            print(line)
    return 0
