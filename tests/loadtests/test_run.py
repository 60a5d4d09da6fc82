"""CI smoke of every Locust scenario: a few users for a few seconds against a real
``vmws serve`` subprocess on an unused port. Locust runs in a subprocess (gevent's
monkey-patching must stay out of pytest); a failure reported by Locust fails the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.catalog import SCENARIOS, Scenario
from loadtests.run import RunResult, _seconds, run_scenario


def _explain(result: RunResult) -> str:
    logs = sorted(result.csv_prefix.parent.rglob("*.log"))
    tail = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    failures = Path(f"{result.csv_prefix}_failures.csv")
    return (failures.read_text() if failures.exists() else "") + tail


@pytest.mark.load
@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", list(Scenario), ids=[s.value for s in Scenario])
def test_scenario_runs_without_failures(scenario: Scenario, tmp_path: Path) -> None:
    result = run_scenario(scenario, users=3, spawn_rate=3, run_time="6s", out_dir=tmp_path, quiet=True)
    assert result.exit_code == 0, _explain(result)
    assert result.failures == 0, _explain(result)
    for name in SCENARIOS[scenario].required:
        assert name in result.stats and result.stats[name].count > 0, (name, _explain(result))
    assert result.html.stat().st_size > 0
    assert result.server_cpu is not None and result.server_cpu >= 0


@pytest.mark.load
@pytest.mark.timeout(90)
def test_distributed_run_gives_each_user_its_own_console(tmp_path: Path) -> None:
    # two worker processes, one VM per user: any two users sharing a console would see
    # each other's keys and the echo checks would fail
    result = run_scenario(
        Scenario.CONSOLE_INTERACTIVE,
        users=4,
        spawn_rate=4,
        run_time="6s",
        out_dir=tmp_path,
        processes=2,
        quiet=True,
    )
    assert result.exit_code == 0, _explain(result)
    assert result.stats["console login"].count == 4, _explain(result)
    assert result.stats["console echo"].count > 0 and result.stats["console echo"].failures == 0


def test_run_time_parses_like_locust() -> None:
    assert _seconds("30s") == 30
    assert _seconds("90") == 90
    assert _seconds("1h30m") == 5400
    assert _seconds("2m5s") == 125


@pytest.mark.load
@pytest.mark.timeout(150)
@pytest.mark.parametrize("scenario", [Scenario.CONSOLE_INTERACTIVE, Scenario.MONITORING], ids=lambda s: s.value)
def test_a_scenario_runs_through_haproxy_against_three_nodes(scenario: Scenario, tmp_path: Path) -> None:
    # Redis, 3 nodes (--shard k/3) and HAProxy round-robin, all started and stopped by
    # run_scenario: most sockets land on a node that does not own their VM
    result = run_scenario(scenario, users=6, spawn_rate=6, run_time="8s", out_dir=tmp_path, quiet=True, cluster=3)
    assert result.exit_code == 0, _explain(result)
    assert result.failures == 0, _explain(result)
    for name in SCENARIOS[scenario].required:
        assert name in result.stats and result.stats[name].count > 0, (name, _explain(result))
    nodes = {p.name: p for p in result.processes if p.sockets is not None}
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    # round-robin spread the users' sockets: every node served some of them
    assert all(p.sockets for p in nodes.values()), result.processes
    names = {p.name for p in result.processes}
    assert {"redis", "haproxy"} <= names
    assert result.redis_used_memory is not None and result.redis_used_memory > 0
    # no node hit an unexpected error on the way
    for log in (tmp_path / f"cluster-{scenario.value}-6u" / "nodes").glob("node-*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
