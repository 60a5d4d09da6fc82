"""Metrics computed when sampled: bounds, monotone counters, determinism."""

from __future__ import annotations

import pytest

from simulator.metrics import Activity, noise, sample_metrics
from tests.simulator.fleetrun import Run
from vmws.backend import Action, MetricsSample

GIB = 1 << 30


def counters(sample: MetricsSample) -> tuple[int, int, int, int]:
    return (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes)


def test_noise_is_uniform_looking_and_repeatable() -> None:
    values = [noise(1, 2, tick) for tick in range(2000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert values == [noise(1, 2, tick) for tick in range(2000)]
    assert values != [noise(9, 2, tick) for tick in range(2000)]


@pytest.mark.parametrize("activity", [Activity.IDLE, Activity.BOOTING, Activity.FLOOD, Activity.PAUSED])
def test_bounds_and_monotone_counters_over_a_day(activity: Activity) -> None:
    previous: MetricsSample | None = None
    for step in range(0, 86_400, 97):
        sample = sample_metrics(
            salt=5,
            name="vm",
            now=1_000_000.0 + step,
            running_seconds=float(step),
            activity=activity,
            memory_total=2 * GIB,
            vcpus=2,
            boot_progress=min(1.0, step / 3600),
        )
        assert 0.0 <= sample.cpu_utilization <= 100.0
        assert 0 <= sample.memory_used <= sample.memory_total == 2 * GIB
        if previous is not None:
            assert all(b >= a for a, b in zip(counters(previous), counters(sample), strict=True))
        previous = sample


def test_off_is_zero_but_memory_total() -> None:
    sample = sample_metrics(
        salt=1, name="vm", now=5.0, running_seconds=100.0, activity=Activity.OFF, memory_total=GIB, vcpus=1
    )
    assert sample == MetricsSample(5.0, 0.0, 0, GIB, 0, 0, 0, 0)


def test_a_flood_keeps_a_vcpu_busy() -> None:
    sample = sample_metrics(
        salt=1, name="vm", now=50.0, running_seconds=50.0, activity=Activity.FLOOD, memory_total=GIB, vcpus=1
    )
    assert sample.cpu_utilization >= 99.0


def test_counters_grow_only_while_running_and_restart_on_boot() -> None:
    run = Run()
    first = run.sim.sample("run-a")
    run.clock.advance(30)
    second = run.sim.sample("run-a")
    assert all(b > a for a, b in zip(counters(first), counters(second), strict=True))
    run.perform("run-a", Action.PAUSE)
    paused = run.sim.sample("run-a")
    run.clock.advance(60)
    assert counters(run.sim.sample("run-a")) == counters(paused)
    assert run.sim.sample("run-a").cpu_utilization == 0.0
    assert run.sim.sample("run-a").memory_used > 0
    run.perform("run-a", Action.RESUME)
    run.perform("run-a", Action.RESTART)
    rebooted = run.sim.sample("run-a")
    assert rebooted.net_rx_bytes < second.net_rx_bytes  # a new boot counts from zero
    run.perform("run-a", Action.STOP)
    assert counters(run.sim.sample("run-a")) == (0, 0, 0, 0)


def test_sampling_order_does_not_change_values() -> None:
    a, b = Run(seed=2), Run(seed=2)
    names = a.sim.names()
    forward = {n: a.sim.sample(n) for n in names}
    backward = {n: b.sim.sample(n) for n in reversed(names)}
    assert forward == backward
