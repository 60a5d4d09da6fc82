"""``python -m loadtests.run SCENARIO``: one Locust scenario, headless, CSV and HTML out.

Starts ``vmws serve`` on an unused port with a fleet sized for the scenario (or uses
``--host`` and ``--jwt-secret`` of a server already running), runs Locust in a
subprocess (gevent's monkey-patching stays out of this process), and prints the
figures that matter. Locust's exit code is the command's: 1 when any request failed.

With ``--cluster N`` it starts a cluster instead (``loadtests.cluster_procs``):
Debian's ``redis-server``, N nodes with ``--shard k/N`` over the same fleet, and
``haproxy`` round-robin in front; Locust goes through HAProxy, so most sockets reach
a node that does not own their VM. The summary adds each node's CPU, memory and
sockets, and Redis's CPU and memory. Everything is stopped at the end, on Ctrl-C and
on failure.

    python -m loadtests.run console_interactive --users 100 --run-time 60s
    python -m loadtests.run heartbeat --users 2000 --processes 2 --out results/hb
    python -m loadtests.run monitoring --cluster 3 --users 300

Arguments after ``--`` go to Locust unchanged.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from loadtests.catalog import SCENARIOS, Scenario, ScenarioSpec, spec_for
from loadtests.cluster_procs import Cluster, VmwsNode, start_cluster
from loadtests.fleet import write_fleet
from loadtests.procs import ProcessUsage, ServerProcess, raise_nofile, start_vmws, usage_of
from loadtests.stats import RequestStats, read_stats
from vmws.auth import mint_token

__all__ = ["ProcessFigures", "RunResult", "run_scenario", "cluster_flags", "main"]


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """One process of a cluster over a run: ``node-K``, ``redis`` or ``haproxy``."""

    name: str
    cpu: float  # share of one core over the run
    rss_bytes: int
    sockets: int | None = None  # WebSockets a node opened during the run (None: not a node)


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    users: int
    exit_code: int
    csv_prefix: Path
    html: Path
    seconds: float
    stats: dict[str, RequestStats] = field(default_factory=dict)
    # CPU share of one core the server used over the run (None: server not ours)
    server_cpu: float | None = None
    server_rss_bytes: int | None = None
    # CPU share of one core Locust used (all its processes): near 1.0 per process
    # means the client, not the server, set the pace
    client_cpu: float | None = None
    # A cluster run: each process (nodes, redis, haproxy); server_cpu and
    # server_rss_bytes are then the nodes' sums
    processes: tuple[ProcessFigures, ...] = ()
    redis_used_memory: int | None = None  # Redis's INFO used_memory at the end

    @property
    def failures(self) -> int:
        total = self.stats.get("Aggregated")
        return total.failures if total else 0


def _locust_argv(
    spec: ScenarioSpec,
    *,
    host: str,
    secret: str,
    users: int,
    spawn_rate: float,
    run_time: str,
    csv_prefix: Path,
    html: Path,
    processes: int,
    vms: int,
    reset_stats: bool,
    extra: Sequence[str],
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(spec.locustfile),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        f"{spawn_rate:g}",
        "--run-time",
        run_time,
        "--host",
        host,
        "--csv",
        str(csv_prefix),
        "--html",
        str(html),
        "--stop-timeout",
        "10",
        "--vmws-vms",
        str(vms),
        "--vmws-workers",
        str(processes),
        "--exit-code-on-error",
        "1",
        "--loglevel",
        "WARNING",
    ]
    if processes > 1:
        argv += ["--processes", str(processes)]
    if reset_stats:
        argv.append("--reset-stats")
    return [*argv, *extra]


def run_scenario(
    scenario: str | Scenario,
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: str = "30s",
    out_dir: str | os.PathLike[str] = "loadtest-results",
    processes: int = 1,
    host: str | None = None,
    secret: str | None = None,
    server_cpu: int | None = None,
    locust_cpu: int | None = None,
    reset_stats: bool = False,
    extra: Sequence[str] = (),
    quiet: bool = False,
    server: ServerProcess | Cluster | None = None,
    vms: int | None = None,
    cluster: int | None = None,
) -> RunResult:
    """Run one scenario headless; start a server (or a ``cluster`` of that many nodes
    behind HAProxy) unless ``host`` or ``server`` is given."""
    spec = spec_for(scenario)
    users = users or spec.default_users
    spawn_rate = spawn_rate or min(100.0, max(1.0, users / 5))  # see capacity: listen backlog
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.scenario.value}-{users}u"
    csv_prefix, html = out / name, out / f"{name}.html"
    vm_count = vms or spec.vms_for(users)
    own: ServerProcess | Cluster | None = None
    if server is None and host is None:
        secret = secret or secrets.token_urlsafe(32)
        fleet = write_fleet(out / f"fleet-{vm_count}.toml", vm_count)
        if cluster:
            own = server = start_cluster(out / f"cluster-{name}", cluster, secret, flags=cluster_flags(spec, fleet))
        else:
            own = server = start_vmws(
                secret,
                out / f"vmws-{name}.log",
                scenario=fleet,
                cpu=server_cpu,
                heartbeat_interval=spec.heartbeat_interval,
                metrics_interval=spec.metrics_interval,
            )
    if server is not None:
        host = server.base_url
    if not secret:
        raise ValueError("a server given by --host needs its --jwt-secret to mint tokens")
    assert host is not None
    argv = _locust_argv(
        spec,
        host=host,
        secret=secret,
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time,
        csv_prefix=csv_prefix,
        html=html,
        processes=processes,
        vms=vm_count,
        reset_stats=reset_stats,
        extra=extra,
    )
    cpu_cores = None if locust_cpu is None else str(locust_cpu)

    def child_setup() -> None:
        raise_nofile()
        if cpu_cores is not None and int(cpu_cores) < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {int(cpu_cores)})

    env = {**os.environ, "VMWS_JWT_SECRET": secret}  # the secret stays off the command line
    try:
        before = _usages(server)
        sockets_before = _sockets(server, secret)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with open(out / f"locust-{name}.log", "wb") as log:
            proc = subprocess.run(
                argv,
                env=env,
                preexec_fn=child_setup,
                stdin=subprocess.DEVNULL,
                stdout=log if quiet else None,
                stderr=subprocess.STDOUT if quiet else None,
                timeout=_seconds(run_time) + 120,
                check=False,
            )
        seconds = time.monotonic() - started
        after = _usages(server)
        sockets_after = _sockets(server, secret)
        redis_memory = int(server.redis.info("memory")["used_memory"]) if isinstance(server, Cluster) else None
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if own is not None:
            own.stop()
    stats = read_stats(csv_prefix) if Path(f"{csv_prefix}_stats.csv").exists() else {}
    per_process = tuple(
        ProcessFigures(
            who,
            (after[who].cpu_seconds - before[who].cpu_seconds) / seconds,
            after[who].rss_bytes,
            sockets_after[who] - sockets_before.get(who, 0) if who in sockets_after else None,
        )
        for who in after
        if who in before
    )
    nodes = [p for p in per_process if p.sockets is not None] if isinstance(server, Cluster) else list(per_process)
    cpu = sum(p.cpu for p in nodes) if nodes else None
    rss = sum(p.rss_bytes for p in nodes) if nodes else None
    return RunResult(
        spec.scenario,
        users,
        proc.returncode,
        csv_prefix,
        html,
        seconds,
        stats,
        server_cpu=cpu,
        server_rss_bytes=rss,
        client_cpu=(children_after.ru_utime + children_after.ru_stime - children.ru_utime - children.ru_stime)
        / seconds,
        processes=per_process if isinstance(server, Cluster) else (),
        redis_used_memory=redis_memory,
    )


def cluster_flags(spec: ScenarioSpec, fleet: Path) -> list[str]:
    """The ``vmws serve`` flags of every node of a load-test cluster (``--shard`` apart)."""
    return [
        "--scenario",
        str(fleet),
        "--heartbeat-interval",
        f"{spec.heartbeat_interval:g}",
        "--metrics-interval",
        f"{spec.metrics_interval:g}",
    ]


def _usages(server: ServerProcess | Cluster | None) -> dict[str, ProcessUsage]:
    """CPU and memory of the server's processes now, by name."""
    if isinstance(server, Cluster):
        return {who: usage_of(pid) for who, pid in server.processes().items()}
    return {"vmws": server.usage()} if server is not None else {}


def _sockets(server: ServerProcess | Cluster | None, secret: str) -> dict[str, int]:
    """WebSockets each node of a cluster has opened so far (its ``connection`` messages,
    from its Prometheus ``/metrics``), by node name; a dead node is left out."""
    if not isinstance(server, Cluster):
        return {}
    return {node.name: _connections_sent(node, secret) for node in server.nodes if node.alive()}


def _connections_sent(node: VmwsNode, secret: str) -> int:
    token = mint_token(secret, sub="loadtest-metrics", permissions=["metrics"], now=time.time(), ttl=60)
    request = urllib.request.Request(node.http + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode("utf-8")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "vmws_messages_total"
                and sample.labels.get("direction") == "out"
                and sample.labels.get("type") == "connection"
            ):
                return int(sample.value)
    return 0


def _seconds(run_time: str) -> float:
    """Locust's ``--run-time`` (``90``, ``30s``, ``5m``, ``1h30m``) in seconds."""
    total, number = 0.0, ""
    for ch in run_time.strip():
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number or 0) * {"s": 1, "m": 60, "h": 3600}[ch]
            number = ""
    return total + float(number or 0)


def summary(result: RunResult) -> str:
    spec = SCENARIOS[result.scenario]
    lines = [f"{result.scenario.value}: {result.users} users, {result.seconds:.0f}s, exit {result.exit_code}"]
    lines.append(f"  {'request':<18} {'count':>8} {'fail':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9} {'KB/s':>9}")
    for name, row in result.stats.items():
        lines.append(
            f"  {name:<18} {row.count:>8} {row.failures:>6} {row.median_ms:>8.0f} {row.p99_ms:>8.0f} "
            f"{row.rps:>9.1f} {row.bytes_per_second / 1000:>9.1f}"
        )
    if result.processes:
        lines.append(f"  {'process':<10} {'CPU':>6} {'RSS MiB':>8} {'sockets':>8}")
        for proc in result.processes:
            opened = "" if proc.sockets is None else str(proc.sockets)
            lines.append(f"  {proc.name:<10} {proc.cpu:>6.0%} {proc.rss_bytes / 2**20:>8.0f} {opened:>8}")
        if result.redis_used_memory is not None:
            lines.append(f"  Redis used_memory: {result.redis_used_memory / 2**20:.1f} MiB")
    if result.server_cpu is not None:
        lines.append(
            f"  {'nodes' if result.processes else 'server'}: {result.server_cpu * 100:.0f}% of a core, "
            f"{(result.server_rss_bytes or 0) / 2**20:.0f} MiB resident; "
            f"Locust: {(result.client_cpu or 0) * 100:.0f}% of a core"
        )
    lines.append(f"  limit for capacity: p99 of '{spec.limit_request}' <= {spec.limit_p99_ms:g} ms")
    lines.append(f"  CSV: {result.csv_prefix}_stats.csv  HTML: {result.html}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run one vmws Locust scenario headless.",
        epilog="Scenarios: " + "; ".join(f"{s.value}: {SCENARIOS[s].summary}" for s in Scenario),
    )
    parser.add_argument("scenario", choices=[s.value for s in Scenario])
    parser.add_argument("--users", "-u", type=int, help="peak users (default: the scenario's)")
    parser.add_argument(
        "--spawn-rate", "-r", type=float, help="users started per second (default users/5, at most 100)"
    )
    parser.add_argument("--run-time", "-t", default="30s", help="e.g. 30s, 5m (default 30s)")
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes on this machine")
    parser.add_argument("--out", default="loadtest-results", help="folder for CSV, HTML and logs")
    parser.add_argument("--host", help="ws://HOST:PORT of a running server (default: start one)")
    parser.add_argument(
        "--jwt-secret", default=os.environ.get("VMWS_JWT_SECRET"), help="that server's secret (env VMWS_JWT_SECRET)"
    )
    parser.add_argument("--vms", type=int, help="VMs in that server's load fleet (loadtests.fleet names)")
    parser.add_argument("--server-cpu", type=int, help="pin the started server to this CPU")
    parser.add_argument("--locust-cpu", type=int, help="pin Locust to this CPU")
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="start redis-server, N nodes (--shard k/N) and haproxy, and run through haproxy",
    )
    args = parser.parse_args(args_list)
    if args.host and not args.jwt_secret:
        parser.error("--host needs --jwt-secret (or VMWS_JWT_SECRET)")
    if args.cluster is not None and not 1 <= args.cluster <= 16:
        parser.error("--cluster takes 1 to 16 nodes")
    if args.cluster and (args.host or args.server_cpu is not None):
        parser.error("--cluster starts its own nodes: it does not go with --host or --server-cpu")
    raise_nofile()
    result = run_scenario(
        args.scenario,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        out_dir=args.out,
        processes=args.processes,
        host=args.host,
        secret=args.jwt_secret,
        server_cpu=args.server_cpu,
        locust_cpu=args.locust_cpu,
        extra=extra,
        vms=args.vms,
        cluster=args.cluster,
    )
    print(summary(result))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
