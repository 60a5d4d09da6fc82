from __future__ import annotations

import math

from loadtests.bench.common import Outcome, percentile


def test_outcome_line_says_ok_or_miss_against_the_target() -> None:
    assert Outcome("console_flood", 1.234, 1.0, higher=True).line() == "console_flood ratio=1.23 target=1 OK"
    assert Outcome("idle_10k", 1.6, 1.5, higher=False).line() == "idle_10k ratio=1.60 target=1.5 MISS"
    # a ratio inside its target still misses when a side condition fails
    held = Outcome("broadcast_1k", 0.9, 2.0, higher=False, extra_ok=False, note="p99 60 ms > 50 ms")
    assert held.line() == "broadcast_1k ratio=0.90 target=2 MISS (p99 60 ms > 50 ms)"


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 99))
