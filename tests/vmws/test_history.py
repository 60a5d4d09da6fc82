"""The bounded metrics history (vmws/history.py): tiers, averages, counters, bounds."""

from __future__ import annotations

from vmws.backend import MetricsSample
from vmws.history import SAMPLE_BYTES, HistoryLimits, MetricsHistory, sample_object

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 60  # a minute boundary


def sample(cpu: float, used: int, counter: int, total: int = 4096) -> MetricsSample:
    return MetricsSample(0.0, cpu, used, total, counter, 2 * counter, 3 * counter, 4 * counter)


def test_recent_samples_come_back_as_taken_with_the_metrics_message_shape() -> None:
    history = MetricsHistory(HistoryLimits.for_interval(2.0))
    for i in range(5):
        history.record("vm", sample(10.0 + i, 1000 + i, 100 * i), T0 + 2 * i)
    rows = history.since("vm", 60, T0 + 10)
    assert [row[0] for row in rows] == [T0 + 2 * i for i in range(5)]
    assert sample_object(rows[-1]) == {
        "timestamp": "2023-11-14T22:13:08.000Z",
        "cpu": {"utilization": 14.0},
        "memory": {"used": 1004, "total": 4096},
        "network": {"rxBytes": 400, "txBytes": 800},
        "disk": {"readBytes": 1200, "writeBytes": 1600},
    }
    assert history.since("vm", 3, T0 + 10) == rows[-1:]  # since=3: samples at 8 (and 10)
    assert history.since("nobody", 60, T0) == []


def test_the_recent_tier_holds_ten_minutes_at_the_metrics_interval_and_no_more() -> None:
    limits = HistoryLimits.for_interval(2.0)
    assert limits.recent_capacity == 300 and limits.minute_count == 1440
    history = MetricsHistory(limits)
    for i in range(1000):
        history.record("vm", sample(50.0, 1, i), T0 + 2 * i)
    now = T0 + 2 * 999
    recent = history.since("vm", 600, now)
    assert [row[0] for row in recent] == [now - 2 * i for i in range(299, -1, -1)]  # the last 300, in order
    assert history._vms["vm"].recent.nbytes() <= 300 * SAMPLE_BYTES * 1.2  # the ring stopped growing


def test_older_samples_become_minute_averages_with_cumulative_counters() -> None:
    history = MetricsHistory(HistoryLimits(recent_seconds=120, recent_capacity=60, minute_count=1440))
    # 10 minutes at one sample every 10 s: CPU alternates 10/30, memory 100/300.
    for i in range(60):
        history.record("vm", sample(10.0 if i % 2 else 30.0, 100 if i % 2 else 300, 1000 * i), T0 + 10 * i)
    now = T0 + 590
    rows = history.since("vm", 600, now)
    minutes = [row for row in rows if row[0] < now - 120]
    assert [row[0] for row in minutes] == [T0 + 60 * m for m in range(7)]
    for m, (_, cpu, ints) in enumerate(minutes):
        assert cpu == 20.0 and ints[0] == 200 and ints[1] == 4096
        assert ints[2] == 1000 * (6 * m + 5)  # the minute's last counter value, not a mean
    counters = [ints[2] for _, _, ints in rows]
    assert counters == sorted(counters)  # cumulative all the way through
    # the recent tier takes over where the last whole minute before it ends
    assert rows[len(minutes)][0] >= minutes[-1][0] + 60


def test_a_day_of_minutes_is_the_bound_whatever_runs() -> None:
    history = MetricsHistory(HistoryLimits(recent_seconds=600, recent_capacity=300, minute_count=1440))
    for i in range(3 * 1440):  # three days at one sample a minute
        history.record("vm", sample(1.0, 1, i), T0 + 60 * i)
    vm = history._vms["vm"]
    assert vm.minutes is not None and len(vm.minutes) == 1440
    assert vm.nbytes() <= (300 + 1440) * SAMPLE_BYTES * 1.2
    now = T0 + 60 * (3 * 1440 - 1)
    rows = history.since("vm", 10**9, now)
    assert rows[0][0] >= now - 86400 - 60 and len(rows) <= 1440 + 11


def test_a_sample_not_newer_than_the_last_is_dropped_and_forget_frees_the_vm() -> None:
    history = MetricsHistory(HistoryLimits())
    history.record("vm", sample(1.0, 1, 1), T0 + 5)
    history.record("vm", sample(2.0, 2, 2), T0 + 5)
    history.record("vm", sample(3.0, 3, 3), T0 + 4)
    assert len(history.since("vm", 60, T0 + 6)) == 1
    latest = history.latest("vm")
    assert latest is not None and latest.cpu_utilization == 1.0 and latest.net_rx_bytes == 1
    history.forget("vm")
    assert "vm" not in history and history.latest("vm") is None
