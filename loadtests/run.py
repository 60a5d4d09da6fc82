"""``python -m loadtests.run SCENARIO``: one Locust scenario, headless, CSV and HTML out.

Starts ``vmws serve`` on an unused port with a fleet sized for the scenario (or uses
``--host`` and ``--jwt-secret`` of a server already running), runs Locust in a
subprocess (gevent's monkey-patching stays out of this process), and prints the
figures that matter. Locust's exit code is the command's: 1 when any request failed.

    python -m loadtests.run console_interactive --users 100 --run-time 60s
    python -m loadtests.run heartbeat --users 2000 --processes 2 --out results/hb

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.catalog import SCENARIOS, Scenario, ScenarioSpec, spec_for
from loadtests.fleet import write_fleet
from loadtests.procs import ServerProcess, raise_nofile, start_vmws
from loadtests.stats import RequestStats, read_stats

__all__ = ["RunResult", "run_scenario", "main"]


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
    server: ServerProcess | None = None,
    vms: int | None = None,
) -> RunResult:
    """Run one scenario headless; start a server unless ``host`` or ``server`` is given."""
    spec = spec_for(scenario)
    users = users or spec.default_users
    spawn_rate = spawn_rate or min(100.0, max(1.0, users / 5))  # see capacity: listen backlog
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.scenario.value}-{users}u"
    csv_prefix, html = out / name, out / f"{name}.html"
    vm_count = vms or spec.vms_for(users)
    own: ServerProcess | None = None
    if server is None and host is None:
        secret = secret or secrets.token_urlsafe(32)
        fleet = write_fleet(out / f"fleet-{vm_count}.toml", vm_count)
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
        before = server.usage() if server is not None else None
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
        after = server.usage() if server is not None else None
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if own is not None:
            own.stop()
    stats = read_stats(csv_prefix) if Path(f"{csv_prefix}_stats.csv").exists() else {}
    cpu = (after.cpu_seconds - before.cpu_seconds) / seconds if before and after else None
    return RunResult(
        spec.scenario,
        users,
        proc.returncode,
        csv_prefix,
        html,
        seconds,
        stats,
        server_cpu=cpu,
        server_rss_bytes=after.rss_bytes if after else None,
        client_cpu=(children_after.ru_utime + children_after.ru_stime - children.ru_utime - children.ru_stime)
        / seconds,
    )


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
    if result.server_cpu is not None:
        lines.append(
            f"  server: {result.server_cpu * 100:.0f}% of a core, "
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
    args = parser.parse_args(args_list)
    if args.host and not args.jwt_secret:
        parser.error("--host needs --jwt-secret (or VMWS_JWT_SECRET)")
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
    )
    print(summary(result))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
