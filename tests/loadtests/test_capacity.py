"""The capacity report from step figures: verdicts, the knee, per-core figures, plots."""

from __future__ import annotations

from pathlib import Path

from loadtests.capacity import Limits, Step, _plots, judge, knee, report
from loadtests.catalog import SCENARIOS, Scenario
from loadtests.run import RunResult
from loadtests.stats import RequestStats

SPEC = SCENARIOS[Scenario.CONSOLE_INTERACTIVE]
LIMITS = Limits("console echo", 50.0, 0.01)


def _result(users: int, p99: float, failures: int = 0, cpu: float = 0.5) -> RunResult:
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
