"""``python -m loadtests.bench.cluster [--rounds N] [--quick]``: the built cluster's figures.

Real processes on loopback: ``redis-server`` and two ``vmws serve`` nodes
(``--shard 1/2``, ``--shard 2/2``, the demo fleet). A VM owned by node 1 is used from
node 1 itself (``owner``) or from node 2 (``other node``: everything crosses Redis).
Per round and placement:

- *console, bulk*: one viewer runs ``seq 1 N`` (≈ 1 MB, which the simulator prints in
  one or two reads) five times; CPU of every process involved (both nodes and Redis; not this
  client) per MB of console output received;
- *console, lines*: the same viewer runs 150 commands printing ≈ 900 bytes each, one
  after another (how a console is used: a batch per command, and the typing);
- *broadcast*: 100 watchers of the VM, metrics every 0.1 s (≈ 1,000 messages/s); CPU
  of every process per 1,000 messages received;
- *echo*: 200 keystrokes at 50/s, each timed from send until its echo arrives (p50 and
  p99 over every round's keystrokes together);
- *commands*: ``pause``/``resume`` in turn, each until its response.

Redis's share of that work (``INFO commandstats`` calls and ``INFO cpu`` deltas, the idle
background of the cluster subtracted) is given per unit for the ``other node`` runs.
Then Redis's memory: per idle VM (one node over a fleet of idle VMs, ``used_memory``
before and after) and per console held (``MEMORY USAGE`` of a ``:con`` stream after
output of several times the scrollback, and again after as much more: it must not grow),
and what one Redis sustains here of the relay's commands (``redis-benchmark``), for the
paper estimate of how far one Redis goes (``docs/cluster.md``).

Medians over the rounds. The machine is shared and noisy: the ratios within one run are
what count; every figure is printed with the machine line and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from loadtests.bench.common import median, percentile, progress
from loadtests.cluster_procs import Cluster, RedisProcess, VmwsNode, start_cluster, start_redis
from loadtests.fleet import write_fleet
from loadtests.procs import usage_of
from vmws.auth import mint_token

__all__ = ["main", "redis_work", "RedisWork"]

NODE_FLAGS = ("--max-message-rate", "1000", "--metrics-interval", "0.1")
WATCHERS = 100
KEYSTROKES = 200
COMMANDS = 20
LINES = 150  # short outputs per round of the "lines" console workload
BULK_FLOODS = 5  # floods of ≈ 1 MB per round of the "bulk" console workload
# Redis commands this benchmark sends itself (through redis-cli / redis-py): not the cluster's.
_OWN_COMMANDS = frozenset({"info", "memory", "ping", "client", "command", "config", "hello", "select", "xinfo"})
_TIMESTAMP = "2023-05-23T12:34:56Z"


# ---------------------------------------------------------------- Redis's own accounting


@dataclass(frozen=True, slots=True)
class RedisWork:
    """What Redis has done so far: command calls (the cluster's) and CPU seconds."""

    calls: int
    cpu_seconds: float
    by_command: dict[str, int] = field(default_factory=dict)

    def __sub__(self, other: RedisWork) -> RedisWork:
        return RedisWork(
            self.calls - other.calls,
            self.cpu_seconds - other.cpu_seconds,
            {k: v - other.by_command.get(k, 0) for k, v in self.by_command.items() if v - other.by_command.get(k, 0)},
        )

    def scaled(self, factor: float) -> RedisWork:
        return RedisWork(round(self.calls * factor), self.cpu_seconds * factor, {})


def redis_work(redis: RedisProcess) -> RedisWork:
    """``INFO commandstats`` calls (this benchmark's own left out) and ``INFO cpu`` time."""
    by_command: dict[str, int] = {}
    for name, value in redis.info("commandstats").items():
        command = name.removeprefix("cmdstat_").split("|")[0]
        if command in _OWN_COMMANDS:
            continue
        calls = next((int(kv[6:]) for kv in value.split(",") if kv.startswith("calls=")), 0)
        by_command[command] = by_command.get(command, 0) + calls
    cpu = redis.info("cpu")
    seconds = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    return RedisWork(sum(by_command.values()), seconds, by_command)


# ---------------------------------------------------------------- clients


class Bench:
    """The running cluster and what a round needs of it."""

    def __init__(self, cluster: Cluster, secret: str) -> None:
        self.cluster = cluster
        self.secret = secret
        self.owner, self.other = cluster.nodes
        self._floods = 0

    def seq_end(self, about: int) -> int:
        """A ``seq`` end never used before in this run: the line that ends a flood is
        then unique, and never found in history replayed from an earlier one."""
        self._floods += 1
        return about + self._floods

    def token(self, sub: str = "bench") -> str:
        perms = ["read", "control", "console"]
        return mint_token(self.secret, sub=sub, permissions=perms, now=time.time(), ttl=3600)

    def cpu(self) -> float:
        pids = [self.owner.pid, self.other.pid, self.cluster.redis.pid]
        return sum(usage_of(pid).cpu_seconds for pid in pids)

    def vms(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(f"{self.owner.http}/api/vms")
        request.add_header("Authorization", f"Bearer {self.token()}")
        with urllib.request.urlopen(request, timeout=10) as response:
            vms: list[dict[str, Any]] = json.loads(response.read())["vms"]
            return vms

    def owned_running(self) -> list[str]:
        return [v["name"] for v in self.vms() if v["node"] == self.owner.name and v["status"] == "running"]


async def _send(ws: Any, kind: str, data: dict[str, Any]) -> None:
    await ws.send(json.dumps({"type": kind, "timestamp": _TIMESTAMP, "data": data}))


async def _until(ws: Any, *needles: str, timeout: float = 60) -> tuple[int, str]:
    """Console bytes received until one of ``needles`` shows up, and which."""
    text, received = "", 0
    async with asyncio.timeout(timeout):
        while True:
            found = next((n for n in needles if n in text[-len(n) - 4096 :]), None)
            if found is not None:
                return received, found
            message = json.loads(await ws.recv())
            if message["type"] == "console":
                text += message["data"]["content"]
                received += len(message["data"]["content"].encode())


async def _logged_in(ws: Any, vm: str) -> str:
    """Log into the guest's shell (if not already); returns its prompt."""
    prompt = f"admin@{vm}:~$ "
    # The held history first, all of it: a "login: " or a prompt in it is not an answer.
    async with asyncio.timeout(30):
        while True:
            try:
                await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break
    await _send(ws, "console_input", {"content": "\n"})
    if (await _until(ws, "login: ", prompt))[1] == "login: ":
        await _send(ws, "console_input", {"content": "admin\n"})
        await _until(ws, "Password: ")
        await _send(ws, "console_input", {"content": "admin\n"})
        await _until(ws, prompt)
    return prompt


# ---------------------------------------------------------------- one round of each workload


@dataclass
class Round:
    console_cpu_ms_per_mb: float = 0.0
    console_redis: RedisWork | None = None
    console_mb: float = 0.0
    lines_cpu_ms_per_mb: float = 0.0
    lines_redis: RedisWork | None = None
    lines_mb: float = 0.0
    broadcast_cpu_ms_per_1000: float = 0.0
    broadcast_redis: RedisWork | None = None
    broadcast_messages: int = 0
    echoes: list[float] = field(default_factory=list)
    command_redis: RedisWork | None = None
    command_ms: list[float] = field(default_factory=list)


class _Idle:
    """The cluster's background Redis work per second (refreshes, liveness), to subtract."""

    def __init__(self, per_second: RedisWork) -> None:
        self.per_second = per_second

    def net(self, work: RedisWork, seconds: float) -> RedisWork:
        background = self.per_second.scaled(seconds)
        return RedisWork(
            max(0, work.calls - background.calls), max(0.0, work.cpu_seconds - background.cpu_seconds), work.by_command
        )


async def _measure(bench: Bench, node: VmwsNode, vm: str, seq: int, idle: _Idle, watch_seconds: float) -> Round:
    result = Round()
    redis = bench.cluster.redis
    url = f"{node.ws}/ws/vms/{vm}"
    async with websockets.connect(f"{url}/console?token={bench.token()}", max_size=None) as ws:
        prompt = await _logged_in(ws, vm)
        cpu0, work0, t0, received = bench.cpu(), redis_work(redis), time.monotonic(), 0
        for _ in range(BULK_FLOODS):  # one flood takes a few clock ticks of CPU: several
            end = bench.seq_end(seq)
            await _send(ws, "console_input", {"content": f"seq 1 {end}\n"})
            received += (await _until(ws, f"\r\n{end}\r\n{prompt}", timeout=120))[0]
        cpu, seconds = bench.cpu() - cpu0, time.monotonic() - t0
        result.console_mb = received / 1e6
        result.console_cpu_ms_per_mb = cpu * 1000 / result.console_mb
        result.console_redis = idle.net(redis_work(redis) - work0, seconds)
        cpu0, work0, t0, received = bench.cpu(), redis_work(redis), time.monotonic(), 0
        for _ in range(LINES):
            first = 1_000_000 + 1000 * bench.seq_end(0)  # 100 lines of 9 bytes, a unique last one
            await _send(ws, "console_input", {"content": f"seq {first} {first + 99}\n"})
            received += (await _until(ws, f"\r\n{first + 99}\r\n{prompt}"))[0]
        cpu, seconds = bench.cpu() - cpu0, time.monotonic() - t0
        result.lines_mb = received / 1e6
        result.lines_cpu_ms_per_mb = cpu * 1000 / result.lines_mb
        result.lines_redis = idle.net(redis_work(redis) - work0, seconds)
        for _ in range(KEYSTROKES):
            sent = time.perf_counter()
            await _send(ws, "console_input", {"content": "x"})
            await _until(ws, "x", timeout=10)
            result.echoes.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(0.02)
        await _send(ws, "console_input", {"content": "\x15\n"})
        await _until(ws, prompt)

    # broadcast: WATCHERS sockets on the VM, each its own user (per-user limits)
    counts = [0]

    async def watch(i: int, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with websockets.connect(f"{url}?token={bench.token(f'watcher-{i}')}", max_size=None) as ws:
            ready.set()
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if isinstance(message, str) and '"metrics"' in message[:40]:
                    counts[0] += 1

    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(WATCHERS)]
    tasks = [asyncio.create_task(watch(i, readies[i], stop)) for i in range(WATCHERS)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    await asyncio.sleep(1.0)  # every watcher's node follows the VM's metrics
    n0, cpu0, work0, t0 = counts[0], bench.cpu(), redis_work(redis), time.monotonic()
    await asyncio.sleep(watch_seconds)
    n1, cpu1, work1, t1 = counts[0], bench.cpu(), redis_work(redis), time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    result.broadcast_messages = n1 - n0
    result.broadcast_cpu_ms_per_1000 = (cpu1 - cpu0) * 1e6 / max(1, n1 - n0)
    result.broadcast_redis = idle.net(work1 - work0, t1 - t0)

    # commands: pause and resume in turn, each until its response
    async with websockets.connect(f"{url}?token={bench.token()}", max_size=None) as ws:
        work0, t0 = redis_work(redis), time.monotonic()
        for i in range(COMMANDS):
            action = "pause" if i % 2 == 0 else "resume"
            sent = time.perf_counter()
            await _send(ws, "command", {"action": action, "requestId": f"bench-{i}"})
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "response" and message["data"].get("requestId") == f"bench-{i}":
                        break
            result.command_ms.append((time.perf_counter() - sent) * 1000)
        result.command_redis = idle.net(redis_work(redis) - work0, time.monotonic() - t0)
    return result


# ---------------------------------------------------------------- Redis memory


async def _console_memory(bench: Bench, vms: list[str], seq: int, scrollback: int) -> tuple[float, float]:
    """Mean ``MEMORY USAGE`` of a held console's stream after output of several times the
    scrollback, then after as much more output (bounded: the two agree)."""
    redis = bench.cluster.redis

    def usage() -> float:
        sizes = [int(redis.cli("memory", "usage", f"vmws:vm:{{{vm}}}:con", "samples", "0") or 0) for vm in vms]
        return sum(sizes) / len(sizes)

    async def flood() -> None:
        for vm in vms:
            async with websockets.connect(
                f"{bench.other.ws}/ws/vms/{vm}/console?token={bench.token()}", max_size=None
            ) as ws:
                prompt = await _logged_in(ws, vm)
                end = bench.seq_end(seq)
                await _send(ws, "console_input", {"content": f"seq 1 {end}\n"})
                await _until(ws, f"\r\n{end}\r\n{prompt}", timeout=120)

    await flood()
    first = usage()
    await flood()
    return first, usage()


@dataclass(frozen=True, slots=True)
class IdleFleet:
    """Redis's share of one node over ``vms`` idle VMs."""

    vms: int
    bytes_per_vm: float  # used_memory over the fleet, per VM
    record_bytes: float  # MEMORY USAGE of one VM's record
    calls_per_vm_s: float  # Redis commands per VM per second (the records' refresh)
    cpu_us_per_vm_s: float  # Redis CPU µs per VM per second


def _idle_fleet(directory: Path, secret: str, vms: int, seconds: float) -> IdleFleet:
    """One node over ``vms`` idle VMs: Redis memory per VM (``used_memory`` before and
    after), then Redis's work per VM over ``seconds`` of doing nothing."""
    fleet = write_fleet(directory / f"fleet-{vms}.toml", vms)
    with start_redis(directory / "redis-idle") as redis:
        empty = int(redis.info("memory")["used_memory"])
        node = VmwsNode(
            directory / "idle-node", "idle-node", "--scenario", str(fleet), secret=secret, redis_url=redis.url
        )
        node.start(timeout=120)
        try:
            time.sleep(4)  # one refresh after start: every record written, every :in subscribed
            used = int(redis.info("memory")["used_memory"])
            record = int(redis.cli("memory", "usage", "vmws:vm:{load-00001}", "samples", "0") or 0)
            w0, t0 = redis_work(redis), time.monotonic()
            time.sleep(seconds)
            work, elapsed = redis_work(redis) - w0, time.monotonic() - t0
        finally:
            node.stop()
    per = vms * elapsed
    return IdleFleet(vms, (used - empty) / vms, float(record), work.calls / per, work.cpu_seconds * 1e6 / per)


def _redis_ceiling(directory: Path, quick: bool) -> dict[str, float]:
    """What one Redis here sustains, pipelined 16 deep as a node's outbox sends: requests/s
    of the relay's commands (``redis-benchmark``, 2 connections: two nodes)."""
    payload = "x" * 1000
    tests = {
        "PUBLISH (1 subscriber)": ["publish", "vmws:bench:out", payload],
        "XADD 1 KB, MAXLEN = 64": ["xadd", "vmws:bench:con", "MAXLEN", "=", "64", "*", "d", payload],
        "HSET (a VM record)": ["hset", "vmws:bench:vm", "status", "running", "owner", "node-1"],
    }
    rates = {}
    with start_redis(directory / "redis-ceiling") as redis:
        # a subscriber, as every followed VM has (its messages are read and thrown away)
        listener = subprocess.Popen(
            ["redis-cli", "-p", str(redis.port), "subscribe", "vmws:bench:out"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.2)
            for name, command in tests.items():
                out = subprocess.run(
                    ["redis-benchmark", "-p", str(redis.port), "-c", "2", "-P", "16", "-q", "--csv"]
                    + ["-n", "20000" if quick else "200000", *command],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                ).stdout
                row = [line for line in out.splitlines() if line and not line.startswith('"test"')][-1]
                rates[name] = float(row.split(",")[1].strip('"'))
        finally:
            listener.terminate()
            listener.wait(5)
    return rates


# ---------------------------------------------------------------- the run


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _per(work: list[RedisWork | None], units: list[float], scale: float) -> tuple[float, float]:
    """Median Redis calls and Redis CPU ms per ``scale`` units."""
    calls = [w.calls * scale / u for w, u in zip(work, units, strict=True) if w and u]
    cpu = [w.cpu_seconds * 1000 * scale / u for w, u in zip(work, units, strict=True) if w and u]
    return median(calls), median(cpu)


async def _run(directory: Path, rounds: int, quick: bool) -> list[str]:
    secret = secrets.token_urlsafe(32)
    seq = 60_000 if quick else 150_000
    watch_seconds = 3.0 if quick else 8.0
    lines: list[str] = []
    progress("starting redis-server and two nodes")
    with start_cluster(directory / "cluster", 2, secret, flags=NODE_FLAGS, speed=20, balancer=False) as cluster:
        bench = Bench(cluster, secret)
        await asyncio.sleep(1)
        owned = bench.owned_running()
        vm = owned[0]
        w0, t0 = redis_work(cluster.redis), time.monotonic()
        await asyncio.sleep(3 if quick else 6)
        idle = _Idle((redis_work(cluster.redis) - w0).scaled(1 / (time.monotonic() - t0)))
        results: dict[str, list[Round]] = {"owner": [], "other node": []}
        for r in range(rounds):
            for where, node in (("owner", bench.owner), ("other node", bench.other)):
                progress(f"round {r + 1}/{rounds}: viewer on the {where}")
                results[where].append(await _measure(bench, node, vm, seq, idle, watch_seconds))
        progress("console memory")
        held = owned[1:4] or owned[:1]
        con_first, con_again = await _console_memory(bench, held, 20_000 if quick else 40_000, 65536)

    progress("idle VMs")
    fleet = _idle_fleet(directory, secret, 500 if quick else 2000, 6.0 if quick else 12.0)

    progress("Redis's ceiling (redis-benchmark)")
    ceiling = _redis_ceiling(directory, quick)

    own, other = results["owner"], results["other node"]

    def med(rs: list[Round], get: Callable[[Round], float]) -> float:
        return median([get(r) for r in rs])

    c_own, c_other = med(own, lambda r: r.console_cpu_ms_per_mb), med(other, lambda r: r.console_cpu_ms_per_mb)
    l_own, l_other = med(own, lambda r: r.lines_cpu_ms_per_mb), med(other, lambda r: r.lines_cpu_ms_per_mb)
    b_own, b_other = (
        med(own, lambda r: r.broadcast_cpu_ms_per_1000),
        med(other, lambda r: r.broadcast_cpu_ms_per_1000),
    )
    # every keystroke of every round pooled: a p99 of 200 is its second worst, too noisy alone
    echoes = {w: [e for r in rs for e in r.echoes] for w, rs in results.items()}
    p50 = {w: percentile(e, 50) for w, e in echoes.items()}
    p99 = {w: percentile(e, 99) for w, e in echoes.items()}
    lines += [
        f"VM {vm} owned by node-1; viewer on node-1 (owner) or node-2 (other node); {rounds} round(s), medians;",
        "CPU counts both nodes and Redis (not the clients).",
        "",
        "| workload | viewer on | CPU (all processes) | × owner | p50 ms | p99 ms | × owner p99 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| console, bulk | owner | {c_own:.1f} ms CPU per MB | 1.00 | | | |",
        f"| console, bulk | other node | {c_other:.1f} ms CPU per MB | {_ratio(c_other, c_own):.2f} | | | |",
        f"| console, lines | owner | {l_own:.0f} ms CPU per MB | 1.00 | | | |",
        f"| console, lines | other node | {l_other:.0f} ms CPU per MB | {_ratio(l_other, l_own):.2f} | | | |",
        f"| broadcast | owner | {b_own:.1f} ms CPU per 1,000 messages | 1.00 | | | |",
        f"| broadcast | other node | {b_other:.1f} ms CPU per 1,000 messages | {_ratio(b_other, b_own):.2f} | | | |",
        f"| echo | owner | | | {p50['owner']:.2f} | {p99['owner']:.2f} | 1.00 |",
        f"| echo | other node | | | {p50['other node']:.2f} | {p99['other node']:.2f} "
        f"| {_ratio(p99['other node'], p99['owner']):.2f} |",
        "",
    ]
    bc_calls, bc_cpu = _per([r.broadcast_redis for r in other], [r.broadcast_messages for r in other], 1000)
    mb_calls, mb_cpu = _per([r.console_redis for r in other], [r.console_mb for r in other], 1)
    ln_calls, ln_cpu = _per([r.lines_redis for r in other], [r.lines_mb for r in other], 1)
    cmd_calls, cmd_cpu = _per([r.command_redis for r in other], [float(COMMANDS)] * len(other), 1)
    own_bc_calls, _ = _per([r.broadcast_redis for r in own], [r.broadcast_messages for r in own], 1000)
    lines += [
        "Redis work per unit of traffic (viewer on the other node; the cluster's idle background "
        f"of {idle.per_second.calls:.0f} commands/s subtracted):",
        "",
        "| unit | Redis commands | Redis CPU ms |",
        "| --- | --- | --- |",
        f"| 1,000 broadcast messages ({WATCHERS} watchers on the node) | {bc_calls:.0f} | {bc_cpu:.2f} |",
        f"| 1 MB of console output, bulk | {mb_calls:.0f} | {mb_cpu:.2f} |",
        f"| 1 MB of console output, lines (with the typing) | {ln_calls:.0f} | {ln_cpu:.2f} |",
        f"| 1 command (pause/resume) | {cmd_calls:.1f} | {cmd_cpu:.3f} |",
        f"| (1,000 broadcast messages, watchers on the owner) | {own_bc_calls:.0f} | |",
        f"| 1 idle VM, per second (its record rewritten every 3 s) | {fleet.calls_per_vm_s:.2f} "
        f"| {fleet.cpu_us_per_vm_s / 1000:.4f} |",
        "",
        "Redis memory:",
        "",
        f"- per idle VM: {fleet.bytes_per_vm:.0f} B (`used_memory` over {fleet.vms} idle VMs of one node; "
        f"its record alone: {fleet.record_bytes:.0f} B)",
        f"- per console held: {con_first / 1024:.1f} KiB after output of several times the 64 KiB scrollback, "
        f"{con_again / 1024:.1f} KiB after as much more (mean of {len(held)} consoles)",
        "",
        "One Redis here, pipelined 16 deep over 2 connections (`redis-benchmark`): "
        + "; ".join(f"{name} {rate:,.0f}/s" for name, rate in ceiling.items()),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    from loadtests.bench.__main__ import load, machine

    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds per placement (default 5, quick 1)")
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test, not figures)")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds or (1 if args.quick else 5), 20))
    print(f"vmws cluster figures on {machine()}; {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vmws-cluster-bench-") as tmp:
        lines = asyncio.run(_run(Path(tmp), rounds, args.quick))
    print("\n".join(lines))
    print(f"done; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
