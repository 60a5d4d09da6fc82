"""Metrics computed when sampled: bounds, monotone counters, profiles, determinism."""

from __future__ import annotations

import statistics

import pytest

from simulator.fleet import PROFILES, FleetSpec, VMSpec
from simulator.metrics import Activity, Extra, MetricsModel, noise, sample_metrics
from tests.simulator.fleetrun import Run, drain
from vmws.backend import Action, MetricsSample

GIB = 1 << 30


def counters(sample: MetricsSample) -> tuple[int, int, int, int]:
    return (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes)


def model(profile: str = "idle", vcpus: int = 2, name: str = "vm") -> MetricsModel:
    return MetricsModel(5, name, PROFILES[profile], vcpus, 2 * GIB)


def test_noise_is_uniform_looking_and_repeatable() -> None:
    values = [noise(1, 2, tick) for tick in range(2000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert values == [noise(1, 2, tick) for tick in range(2000)]
    assert values != [noise(9, 2, tick) for tick in range(2000)]


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("activity", [Activity.IDLE, Activity.BOOTING, Activity.FLOOD, Activity.PAUSED])
def test_bounds_and_monotone_counters_over_a_day(profile: str, activity: Activity) -> None:
    m = model(profile)
    previous: MetricsSample | None = None
    for step in range(0, 86_400, 97):
        sample = sample_metrics(m, 5, 1_000_000.0 + step, float(step), activity, min(1.0, step / 3600))
        assert 0.0 <= sample.cpu_utilization <= 100.0
        assert 0 <= sample.memory_used <= sample.memory_total == 2 * GIB
        if previous is not None:
            assert all(b >= a for a, b in zip(counters(previous), counters(sample), strict=True))
        previous = sample


def test_off_is_zero_but_memory_total() -> None:
    sample = sample_metrics(model(vcpus=1), 1, 5.0, 100.0, Activity.OFF)
    assert sample == MetricsSample(5.0, 0.0, 0, 2 * GIB, 0, 0, 0, 0)


def test_a_flood_keeps_a_vcpu_busy() -> None:
    assert sample_metrics(model(vcpus=1), 1, 50.0, 50.0, Activity.FLOOD).cpu_utilization >= 99.0
    two = [sample_metrics(model(vcpus=2), 1, 50.0 + t, 50.0 + t, Activity.FLOOD).cpu_utilization for t in range(60)]
    idle = [sample_metrics(model(vcpus=2), 1, 50.0 + t, 50.0 + t, Activity.IDLE).cpu_utilization for t in range(60)]
    assert min(two) >= 50.0 > max(idle)


def test_extra_adds_cpu_and_bytes() -> None:
    base = sample_metrics(model(), 1, 50.0, 50.0, Activity.IDLE)
    more = sample_metrics(model(), 1, 50.0, 50.0, Activity.IDLE, extra=Extra(cpu=15.0, disk_write=10, net_rx=7))
    assert more.cpu_utilization == pytest.approx(base.cpu_utilization + 15.0, abs=0.01)
    assert more.disk_write_bytes == base.disk_write_bytes + 10 and more.net_rx_bytes == base.net_rx_bytes + 7


def test_idle_is_quiet_and_web_follows_the_day() -> None:
    idle = [sample_metrics(model("idle"), 1, t * 60.0, t * 60.0, Activity.IDLE).cpu_utilization for t in range(1440)]
    assert max(idle) < 10.0
    web = model("web")
    hourly = [
        statistics.mean(
            sample_metrics(web, 1, h * 3600.0 + m * 60.0, 1.0, Activity.IDLE).cpu_utilization for m in range(60)
        )
        for h in range(24)
    ]
    # a diurnal curve: the busiest hour is at least twice the quietest
    assert max(hourly) > 2 * min(hourly)


def test_batch_runs_jobs_flat_out_and_writes_in_bursts() -> None:
    m = model("batch")
    cpus = [sample_metrics(m, 1, float(t), float(t), Activity.IDLE).cpu_utilization for t in range(0, 3600, 10)]
    busy = [c for c in cpus if c >= 85.0]
    quiet = [c for c in cpus if c < 20.0]
    assert busy and quiet and len(busy) + len(quiet) == len(cpus)
    # roughly burst/period of the time is spent in jobs
    assert 0.1 < len(busy) / len(cpus) < 0.35
    writes = [sample_metrics(m, 1, float(t), float(t), Activity.IDLE).disk_write_bytes for t in range(0, 3600, 10)]
    steps = [b - a for a, b in zip(writes, writes[1:], strict=False)]
    assert max(steps) > 20 * min(steps)


def test_leak_ramps_memory_then_drops() -> None:
    m = model("leak")
    used = [sample_metrics(m, 1, float(t), float(t), Activity.IDLE).memory_used for t in range(0, 4 * 7200, 60)]
    top = max(used)
    assert top > 0.85 * 2 * GIB
    drops = [i for i in range(1, len(used)) if used[i] < used[i - 1] - 0.3 * 2 * GIB]
    assert len(drops) >= 3  # the OOM killer, once per period


def test_paused_memory_and_counters_stand_still() -> None:
    m = model("web")
    first = sample_metrics(m, 1, 1000.0, 500.0, Activity.PAUSED)
    later = sample_metrics(m, 1, 4000.0, 500.0, Activity.PAUSED)
    assert (first.memory_used, counters(first)) == (later.memory_used, counters(later))
    assert later.cpu_utilization == 0.0


def test_counters_grow_only_while_running_and_carry_on_across_a_reboot() -> None:
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
    resumed = run.sim.sample("run-a")
    run.perform("run-a", Action.RESTART)
    # the QEMU process stays across a reboot: its counters carry on
    rebooted = run.sim.sample("run-a")
    assert all(b >= a for a, b in zip(counters(resumed), counters(rebooted), strict=True))
    run.clock.advance(1.0)
    booting = run.sim.sample("run-a")
    assert all(b >= a for a, b in zip(counters(rebooted), counters(booting), strict=True))
    assert booting.disk_read_bytes > rebooted.disk_read_bytes  # the new boot reads its disk
    run.clock.advance(30)
    assert all(b > a for a, b in zip(counters(booting), counters(run.sim.sample("run-a")), strict=True))
    run.perform("run-a", Action.STOP)
    assert counters(run.sim.sample("run-a")) == (0, 0, 0, 0)
    # a power-on counts from zero
    run.perform("run-a", Action.START)
    run.clock.advance(5)
    assert run.sim.sample("run-a").net_rx_bytes < resumed.net_rx_bytes


def test_sampling_order_does_not_change_values() -> None:
    a, b = Run(seed=2), Run(seed=2)
    names = a.sim.names()
    forward = {n: a.sim.sample(n) for n in names}
    backward = {n: b.sim.sample(n) for n in reversed(names)}
    assert forward == backward


def test_console_activity_moves_the_metrics() -> None:
    run = Run(fleet=FleetSpec(vms=(VMSpec("busy", vcpus=1),)))
    tap = run.tap("busy")
    tap.write(b"admin\nadmin\n")
    drain(tap)
    quiet = run.sim.sample("busy")
    # a `yes` flood keeps the vCPU busy while it runs
    tap.write(b"yes\n")
    tap.read()
    assert run.sim.sample("busy").cpu_utilization >= 99.0
    tap.write(b"\x03")
    drain(tap)
    assert run.sim.sample("busy").cpu_utilization < 50.0
    # writes go to the disk counters at once
    tap.write(b"dd if=/dev/zero of=/tmp/z bs=1M count=100\n")
    drain(tap)
    after = run.sim.sample("busy")
    assert after.disk_write_bytes - quiet.disk_write_bytes >= 100 << 20
    # and `yes > FILE` writes for as long as it runs
    tap.write(b"yes > /tmp/y\n")
    run.clock.advance(2.0)
    writing = run.sim.sample("busy")
    assert writing.cpu_utilization >= 99.0
    assert writing.disk_write_bytes - after.disk_write_bytes >= 500_000_000
    tap.write(b"\x03")
    run.clock.advance(10.0)
    assert drain(tap).endswith(b"^C\r\nadmin@busy:~$ ")
    stopped = run.sim.sample("busy")
    assert stopped.disk_write_bytes >= writing.disk_write_bytes  # kept after ^C, not counted twice
    assert stopped.disk_write_bytes - writing.disk_write_bytes < 50_000_000


@pytest.mark.parametrize("force", [False, True], ids=["graceful", "forced"])
def test_what_a_running_command_wrote_is_carried_across_a_reboot(force: bool) -> None:
    run = Run(fleet=FleetSpec(vms=(VMSpec("busy", vcpus=1),)))
    tap = run.tap("busy")
    tap.write(b"admin\nadmin\nyes > /tmp/y\n")
    run.clock.advance(2.0)
    writing = run.sim.sample("busy")
    assert writing.disk_write_bytes >= 500_000_000
    run.perform("busy", Action.RESTART, force=force)  # the reboot ends `yes` mid-write
    after = run.sim.sample("busy")
    assert after.disk_write_bytes >= writing.disk_write_bytes
