"""The capacity report from step figures: verdicts, the knee, per-core figures, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.capacity import Limits, Step, _plots, judge, knee, main, report
from loadtests.catalog import SCENARIOS, Scenario
from loadtests.run import ProcessFigures, RunResult
from loadtests.stats import RequestStats

SPEC = SCENARIOS[Scenario.CONSOLE_INTERACTIVE]
LIMITS = Limits("console echo", 50.0, 0.01)


def _result(
    users: int, p99: float, failures: int = 0, cpu: float = 0.5, processes: tuple[ProcessFigures, ...] = ()
) -> RunResult:
    echo = RequestStats("console echo", 1000, failures, 2.0, 10.0, p99, p99 * 2, 1.0, users * 4.0)
    total = RequestStats("Aggregated", 1000, failures, 2.0, 10.0, p99, p99 * 2, 1.0, users * 4.0)
    return RunResult(
        Scenario.CONSOLE_INTERACTIVE,
        users,
        0,
        Path("x"),
        Path("x.html"),
        20.0,
        {"console echo": echo, "Aggregated": total},
        server_cpu=cpu,
        server_rss_bytes=50 << 20,
        client_cpu=0.3,
        processes=processes,
        redis_used_memory=3 << 20 if processes else None,
    )


def test_a_step_breaks_on_latency_or_errors_and_says_why() -> None:
    assert judge(_result(100, 20.0), SPEC, LIMITS).held
    slow = judge(_result(200, 80.0), SPEC, LIMITS)
    assert not slow.held and "p99 80 ms > 50 ms" in slow.broken
    failing = judge(_result(300, 20.0, failures=50), SPEC, LIMITS)
    assert not failing.held and "errors 5.0%" in failing.broken


def test_the_knee_is_the_last_step_before_the_first_break() -> None:
    steps = [judge(_result(u, p), SPEC, LIMITS) for u, p in [(100, 5), (200, 9), (300, 70), (400, 20)]]
    at_knee = knee(steps)
    assert at_knee is not None and at_knee.users == 200
    assert knee([judge(_result(100, 99.0), SPEC, LIMITS)]) is None


def test_report_has_a_row_per_step_per_core_figures_and_plots(tmp_path: Path) -> None:
    steps: list[Step] = [
        judge(_result(u, p, cpu=c), SPEC, LIMITS) for u, p, c in [(100, 5, 0.25), (200, 9, 0.5), (300, 70, 0.9)]
    ]
    assert _plots(steps, SPEC, LIMITS, tmp_path) == ["latency.png", "throughput.png"]
    text = report(steps, SPEC, LIMITS, tmp_path, "test run").read_text()
    assert text.count("\n| ") == 2 + 3  # header, rule, three steps
    assert "**Knee:** 200 users" in text and "300 users did not" in text
    # 200 users at half a core: 400 per fully used core
    assert "**400 users**" in text
    for png in ("latency.png", "throughput.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cluster_report_gives_each_node_and_redis_per_step(tmp_path: Path) -> None:
    def procs(users: int) -> tuple[ProcessFigures, ...]:
        return (
            ProcessFigures("node-1", 0.2, 60 << 20, users // 2),
            ProcessFigures("node-2", 0.3, 70 << 20, users - users // 2),
            ProcessFigures("redis", 0.05, 10 << 20),
        )

    steps = [judge(_result(u, p, cpu=0.5, processes=procs(u)), SPEC, LIMITS) for u, p in [(100, 5), (200, 70)]]
    text = report(steps, SPEC, LIMITS, tmp_path, "cluster run").read_text()
    assert "| users | node-1 | node-2 | redis | Redis used |" in text
    assert "| 100 | 20%, 60 MiB, 50 sockets | 30%, 70 MiB, 50 sockets | 5%, 10 MiB | 3.0 MiB |" in text
    assert "divided by the nodes' CPU share" in text
    # Redis: 5% of a core next to the nodes' 50%: a tenth of a Redis core per node core
    assert "**Redis at the knee:** 5.0% of a core, 3.0 MiB used (0.10 of a Redis core" in text


def test_one_node_reports_have_no_cluster_table(tmp_path: Path) -> None:
    text = report([judge(_result(100, 5), SPEC, LIMITS)], SPEC, LIMITS, tmp_path, "one node").read_text()
    assert "Per process" not in text and "Redis at the knee" not in text


@pytest.mark.load
@pytest.mark.timeout(150)
def test_capacity_of_a_cluster_reports_per_node_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cap"
    argv = ["monitoring", "--cluster", "2", "--start", "4", "--max-users", "4", "--step-time", "4", "--out", str(out)]
    assert main(argv) == 0
    (step,) = json.loads((out / "steps.json").read_text())
    names = sorted(p["name"] for p in step["processes"])
    assert names == ["haproxy", "node-1", "node-2", "redis"]
    nodes = [p for p in step["processes"] if p["name"].startswith("node-")]
    assert all(p["sockets"] > 0 and p["rss_bytes"] > 0 for p in nodes), nodes
    assert step["redis_used_mib"] > 0
    text = (out / "report.md").read_text()
    assert "| users | node-1 | node-2 | redis | haproxy | Redis used |" in text
    assert "A cluster of 2 nodes" in text
    assert "knee:" in capsys.readouterr().out
