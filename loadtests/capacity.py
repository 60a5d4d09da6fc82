"""``python -m loadtests.capacity SCENARIO``: step users up until a limit breaks; report.

One ``vmws serve`` (pinned to CPU 0, fleet sized for the largest step) serves every
step; each step is a separate headless Locust run (pinned to CPU 1, statistics reset
once all users are started). A step breaks when the p99 of the scenario's limiting
request passes its limit (``--limit-ms``, default the scenario's), when more than
``--max-error-rate`` of requests fail, or when Locust could not start its users; a
broken step is run again (``--confirm``) so one burst from a neighbour does not end it.
The report (``report.md``, ``latency.png``, ``throughput.png``, ``steps.json``) gives a
table per step, the knee (the most users that held every limit) and per-core figures:
users and throughput at the knee divided by the share of a core the server used.

With ``--cluster N`` the server is a cluster (``loadtests.cluster_procs``: Redis, N
nodes with ``--shard k/N``, HAProxy round-robin in front; nothing pinned, as N nodes
and Redis share the machine's cores with Locust) and each step also reports every
node's CPU, memory and sockets and Redis's CPU and memory (``used_memory``); the
per-core figures divide by the nodes' CPU together, and Redis's share is given apart.

    python -m loadtests.capacity console_interactive --start 100 --step 100 --max-users 1000
    python -m loadtests.capacity monitoring --cluster 3 --start 100 --max-users 600
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from loadtests.catalog import Scenario, ScenarioSpec, spec_for
from loadtests.cluster_procs import Cluster, start_cluster
from loadtests.fleet import write_fleet
from loadtests.procs import ServerProcess, raise_nofile, start_vmws
from loadtests.run import ProcessFigures, RunResult, cluster_flags, run_scenario

__all__ = ["Step", "Limits", "judge", "knee", "main"]

SERVER_CPU = 0
CLIENT_CPU = 1


@dataclass(frozen=True, slots=True)
class Limits:
    request: str
    p99_ms: float
    max_error_rate: float


@dataclass(frozen=True, slots=True)
class Step:
    users: int
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    bytes_per_s: float
    error_rate: float
    server_cpu: float
    server_rss_mib: float
    client_cpu: float
    broken: str  # why this step broke a limit; "" when it held
    # a cluster: each process (node-K, redis, haproxy) and Redis's used_memory
    processes: tuple[ProcessFigures, ...] = ()
    redis_used_mib: float | None = None

    @property
    def held(self) -> bool:
        return not self.broken


def judge(result: RunResult, spec: ScenarioSpec, limits: Limits) -> Step:
    """One step's figures and whether they hold the limits."""
    row = result.stats.get(limits.request)
    through = result.stats.get(spec.throughput_request)
    total = result.stats.get("Aggregated")
    error_rate = total.failure_rate if total else 1.0
    reasons = []
    if row is None or row.count == 0:
        reasons.append(f"no '{limits.request}' requests")
    elif row.p99_ms > limits.p99_ms:
        reasons.append(f"p99 {row.p99_ms:g} ms > {limits.p99_ms:g} ms")
    if error_rate > limits.max_error_rate:
        reasons.append(f"errors {error_rate:.1%} > {limits.max_error_rate:.1%}")
    return Step(
        users=result.users,
        p50_ms=row.median_ms if row else math.nan,
        p99_ms=row.p99_ms if row else math.nan,
        requests_per_s=through.rps if through else 0.0,
        bytes_per_s=through.bytes_per_second if through else 0.0,
        error_rate=error_rate,
        server_cpu=result.server_cpu or 0.0,
        server_rss_mib=(result.server_rss_bytes or 0) / 2**20,
        client_cpu=result.client_cpu or 0.0,
        broken="; ".join(reasons),
        processes=result.processes,
        redis_used_mib=None if result.redis_used_memory is None else result.redis_used_memory / 2**20,
    )


def knee(steps: list[Step]) -> Step | None:
    """The most users that held every limit, before the first step that broke one."""
    best = None
    for step in steps:
        if not step.held:
            break
        best = step
    return best


def _plots(steps: list[Step], spec: ScenarioSpec, limits: Limits, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    users = [s.users for s in steps]
    at_knee = knee(steps)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(users, [s.p50_ms for s in steps], "o-", label="p50")
    ax.plot(users, [s.p99_ms for s in steps], "s-", label="p99")
    ax.axhline(limits.p99_ms, color="red", linestyle="--", label=f"limit {limits.p99_ms:g} ms")
    if at_knee:
        ax.axvline(at_knee.users, color="grey", linestyle=":", label=f"knee {at_knee.users} users")
    ax.set(xlabel="users", ylabel="ms", title=f"{spec.scenario.value}: '{limits.request}' latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    by_bytes = spec.throughput_request == "console bytes"
    values = [s.bytes_per_s / 1e6 if by_bytes else s.requests_per_s for s in steps]
    ax.plot(
        users,
        values,
        "o-",
        color="tab:green",
        label=("MB/s" if by_bytes else "req/s") + f" of '{spec.throughput_request}'",
    )
    ax.set(xlabel="users", ylabel="MB/s" if by_bytes else "per second", title=f"{spec.scenario.value}: throughput")
    cpu_axis = ax.twinx()
    cpu_axis.plot(users, [s.server_cpu * 100 for s in steps], "^--", color="tab:orange", label="server CPU %")
    cpu_axis.set_ylabel("server CPU, % of a core")
    lines = ax.get_legend_handles_labels()[0] + cpu_axis.get_legend_handles_labels()[0]
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    return ["latency.png", "throughput.png"]


def report(steps: list[Step], spec: ScenarioSpec, limits: Limits, out: Path, note: str) -> Path:
    by_bytes = spec.throughput_request == "console bytes"
    at_knee = knee(steps)
    lines = [
        f"# Capacity: {spec.scenario.value}",
        "",
        f"{spec.summary}. {note}",
        "",
        f"Limits: p99 of `{limits.request}` ≤ {limits.p99_ms:g} ms, errors ≤ {limits.max_error_rate:.1%}.",
        "",
        "| users | p50 ms | p99 ms | throughput | errors | server CPU | server RSS | Locust CPU | verdict |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in steps:
        through = f"{s.bytes_per_s / 1e6:.1f} MB/s" if by_bytes else f"{s.requests_per_s:.0f}/s"
        lines.append(
            f"| {s.users} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {through} | {s.error_rate:.2%} | {s.server_cpu:.0%} "
            f"| {s.server_rss_mib:.0f} MiB | {s.client_cpu:.0%} | {'held' if s.held else 'broke: ' + s.broken} |"
        )
    lines.append("")
    lines += _cluster_table(steps)
    if at_knee is None:
        lines.append("**Knee:** none: the first step already broke a limit; start lower.")
    else:
        cpu = max(at_knee.server_cpu, 1e-6)
        whose = "nodes'" if at_knee.processes else "server's"
        through = (
            f"{at_knee.bytes_per_s / 1e6 / cpu:.1f} MB/s"
            if by_bytes
            else f"{at_knee.requests_per_s / cpu:.0f} `{spec.throughput_request}`/s"
        )
        lines += [
            f"**Knee:** {at_knee.users} users held every limit (p99 {at_knee.p99_ms:g} ms) "
            f"using {at_knee.server_cpu:.0%} of a core"
            + ("." if at_knee is steps[-1] else f"; {steps[steps.index(at_knee) + 1].users} users did not."),
            "",
            f"**Per core** (at the knee, divided by the {whose} CPU share): about **{at_knee.users / cpu:.0f} users** and **{through}** per fully used core. "
            "One vmws process uses one core; run one node per core, all on one Redis behind any "
            "balancer (docs/cluster.md), and divide the expected users by this figure.",
        ]
        redis = next((p for p in at_knee.processes if p.name == "redis"), None)
        if redis is not None:
            lines += [
                "",
                f"**Redis at the knee:** {redis.cpu:.1%} of a core, {at_knee.redis_used_mib or 0:.1f} MiB used "
                f"({redis.cpu / cpu:.2f} of a Redis core per fully used node core).",
            ]
        broken = next((s for s in steps if not s.held), None)
        if broken is not None and broken.server_cpu < 0.8 and broken.client_cpu < 0.8:
            lines.append("")
            lines.append(
                f"At the break ({broken.users} users) neither the server ({broken.server_cpu:.0%}) nor Locust "
                f"({broken.client_cpu:.0%}) used its whole core on average: the latency came from bursts "
                "(a heartbeat or broadcast to every connection at once) or from other processes on the "
                "machine, and the per-core figure assumes CPU keeps scaling linearly past what was seen."
            )
        if at_knee.client_cpu > 0.9:
            lines.append("")
            lines.append(
                f"Locust used {at_knee.client_cpu:.0%} of a core at the knee: the client may have set "
                "the pace; rerun with `--processes 2` or on another machine."
            )
    lines += ["", "![latency](latency.png)", "", "![throughput](throughput.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cluster_table(steps: list[Step]) -> list[str]:
    """Per step, each process of a cluster: CPU, memory, sockets (nothing on one node)."""
    if not any(s.processes for s in steps):
        return []
    names = list(dict.fromkeys(p.name for s in steps for p in s.processes))
    lines = [
        "Per process (CPU in % of a core; a node's sockets are those it opened in the step):",
        "",
        "| users | " + " | ".join(names) + " | Redis used |",
        "| ---: |" + " ---: |" * (len(names) + 1),
    ]
    for s in steps:
        by_name = {p.name: p for p in s.processes}
        cells = []
        for name in names:
            p = by_name.get(name)
            if p is None:
                cells.append("—")
                continue
            sockets = "" if p.sockets is None else f", {p.sockets} sockets"
            cells.append(f"{p.cpu:.0%}, {p.rss_bytes / 2**20:.0f} MiB{sockets}")
        used = "—" if s.redis_used_mib is None else f"{s.redis_used_mib:.1f} MiB"
        lines.append(f"| {s.users} | " + " | ".join(cells) + f" | {used} |")
    lines.append("")
    return lines


def _start_server(
    spec: ScenarioSpec, out: Path, secret: str, vms: int, cluster: int | None
) -> AbstractContextManager[ServerProcess | Cluster]:
    fleet = write_fleet(out / f"fleet-{vms}.toml", vms)
    if cluster:
        return start_cluster(out / "cluster", cluster, secret, flags=cluster_flags(spec, fleet))
    return start_vmws(
        secret,
        out / "vmws.log",
        scenario=fleet,
        cpu=SERVER_CPU,
        heartbeat_interval=spec.heartbeat_interval,
        metrics_interval=spec.metrics_interval,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.capacity", description="Step users up until a limit breaks; write a report."
    )
    parser.add_argument("scenario", choices=[s.value for s in Scenario])
    parser.add_argument("--start", type=int, help="users in the first step (default: a tenth of --max-users)")
    parser.add_argument("--step", type=int, help="users added per step (default: --start)")
    parser.add_argument("--max-users", type=int, help="stop after this many (default: 10× the scenario's default)")
    parser.add_argument("--step-time", type=float, default=20.0, help="seconds measured per step (default 20)")
    parser.add_argument("--limit-ms", type=float, help="p99 limit of the scenario's limiting request")
    parser.add_argument("--max-error-rate", type=float, default=0.01, help="failed share of requests (default 0.01)")
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes")
    parser.add_argument(
        "--confirm", type=int, default=1, help="reruns of a step that broke before the break counts (default 1)"
    )
    parser.add_argument("--out", help="report folder (default capacity-SCENARIO)")
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="measure a cluster: redis-server, N nodes (--shard k/N) and haproxy; per-node figures",
    )
    args = parser.parse_args(argv)
    if args.cluster is not None and not 1 <= args.cluster <= 16:
        parser.error("--cluster takes 1 to 16 nodes")
    spec = spec_for(args.scenario)
    max_users = args.max_users or spec.default_users * 10
    start = args.start or max(1, max_users // 10)
    step = args.step or start
    limits = Limits(spec.limit_request, args.limit_ms or spec.limit_p99_ms, args.max_error_rate)
    out = Path(args.out or f"capacity-{spec.scenario.value}")
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    plan = list(range(start, max_users + 1, step))
    secret = secrets.token_urlsafe(32)
    vms = spec.vms_for(max_users)
    print(
        f"capacity of {spec.scenario.value}: steps {plan[0]}..{plan[-1]} users, {args.step_time:g}s each; "
        f"limit p99 '{limits.request}' <= {limits.p99_ms:g} ms, errors <= {limits.max_error_rate:.1%}",
        flush=True,
    )
    steps: list[Step] = []
    with _start_server(spec, out, secret, vms, args.cluster) as server:
        for i, users in enumerate(plan, 1):
            # at most 100 new connections a second: vmws listens with Tornado's backlog of
            # 128, and SYNs dropped past it cost 1-3 s each (seen as slow connects)
            spawn_rate = min(100.0, max(1.0, users / 5))
            print(
                f"[{i}/{len(plan)}] {users} users: starting them ({users / spawn_rate:.0f}s), "
                f"then measuring {args.step_time:g}s …",
                flush=True,
            )
            started = time.monotonic()

            def run_step(users: int = users, spawn_rate: float = spawn_rate) -> Step:
                result = run_scenario(
                    spec.scenario,
                    users=users,
                    spawn_rate=spawn_rate,
                    run_time=f"{math.ceil(users / spawn_rate + args.step_time)}s",
                    out_dir=out / "steps",
                    processes=args.processes,
                    secret=secret,
                    server=server,
                    reset_stats=True,
                    quiet=True,
                    locust_cpu=CLIENT_CPU if args.processes == 1 and not args.cluster else None,
                    vms=vms,
                )
                return judge(result, spec, limits)

            outcome = run_step()
            for _ in range(args.confirm):
                if outcome.held:
                    break
                # on a shared machine a neighbour's burst can break one step: a break
                # counts once the step breaks again
                print(f"      broke ({outcome.broken}); running the step again to confirm …", flush=True)
                outcome = run_step()
            steps.append(outcome)
            print(
                f"      p50 {outcome.p50_ms:.1f} ms, p99 {outcome.p99_ms:.1f} ms, errors {outcome.error_rate:.2%}, "
                f"server CPU {outcome.server_cpu:.0%}, Locust CPU {outcome.client_cpu:.0%}"
                + "".join(f", {p.name} {p.cpu:.0%}" for p in outcome.processes)
                + " "
                f"({time.monotonic() - started:.0f}s): {'held' if outcome.held else 'BROKE: ' + outcome.broken}",
                flush=True,
            )
            if not outcome.held or not server.alive():
                break
    _plots(steps, spec, limits, out)
    if args.cluster:
        note = (
            f"A cluster of {args.cluster} nodes (`--shard k/{args.cluster}`), one redis-server and HAProxy "
            f"round-robin, sharing the machine's {os.cpu_count()} cores with Locust (nothing pinned); "
            f"{args.step_time:g}s per step."
        )
    else:
        note = f"Server pinned to CPU {SERVER_CPU}, Locust to CPU {CLIENT_CPU}; {args.step_time:g}s per step."
    path = report(steps, spec, limits, out, note)
    (out / "steps.json").write_bytes(orjson.dumps([asdict(s) for s in steps], option=orjson.OPT_INDENT_2))
    at_knee = knee(steps)
    print(f"knee: {at_knee.users if at_knee else 'none'} users; report: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
