"""The cluster figures benchmark: Redis's own accounting read right, and one short real
run (redis-server and two vmws nodes) that prints every figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtests.bench import cluster
from loadtests.bench.cluster import RedisWork, redis_work
from loadtests.cluster_procs import start_redis


def test_redis_work_counts_the_clusters_commands_not_the_benchmarks_own(tmp_path: Path) -> None:
    with start_redis(tmp_path / "redis") as redis:
        before = redis_work(redis)
        for i in range(5):
            redis.cli("set", f"k{i}", "v")
        redis.cli("publish", "ch", "x")
        redis.cli("memory", "usage", "k1")
        work = redis_work(redis) - before
    assert work.calls == 6, work
    assert work.by_command == {"set": 5, "publish": 1}
    assert work.cpu_seconds >= 0


def test_redis_work_arithmetic() -> None:
    a = RedisWork(100, 2.0, {"publish": 60, "xadd": 40})
    b = RedisWork(40, 0.5, {"publish": 40})
    assert a - b == RedisWork(60, 1.5, {"publish": 20, "xadd": 40})
    assert a.scaled(0.5) == RedisWork(50, 1.0, {})


@pytest.mark.load
@pytest.mark.timeout(240)
def test_a_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vmws cluster figures on ") and "load average" in out
    for row in (
        "| console, bulk | other node |",
        "| console, lines | other node |",
        "| broadcast | other node |",
        "| echo | other node |",
    ):
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert re.search(r"\| \d+\.\d\d \|", line), line  # a ratio to the owner
    assert "| 1 MB of console output, lines (with the typing) |" in out and "| 1 command (pause/resume) |" in out
    assert "| 1 idle VM, per second (its record rewritten every 3 s) |" in out
    idle = re.search(r"per idle VM: (\d+) B", out)
    assert idle and 0 < int(idle.group(1)) < 64 * 1024, out
    held = re.search(r"per console held: ([\d.]+) KiB after .*?, ([\d.]+) KiB after as much more", out)
    assert held, out
    # the stream is trimmed to the scrollback (64 KiB): more output does not grow it
    first, again = float(held.group(1)), float(held.group(2))
    assert 32 < first < 128 and again < first * 1.25, out
