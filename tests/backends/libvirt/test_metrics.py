"""Stats dict → MetricsSample: cpu deltas over vCPUs, balloon memory, summed counters."""

from __future__ import annotations

from vmws.backends.libvirt.metrics import CpuReading, idle_sample, sample_from_stats

STATS = {
    "cpu.time": 4_000_000_000,
    "vcpu.current": 2,
    "balloon.current": 131072,
    "balloon.available": 120000,
    "balloon.usable": 80000,
    "balloon.unused": 60000,
    "net.count": 2,
    "net.0.rx.bytes": 100,
    "net.0.tx.bytes": 10,
    "net.1.rx.bytes": 5,
    "net.1.tx.bytes": 7,
    "block.count": 2,
    "block.0.rd.bytes": 1000,
    "block.0.wr.bytes": 2000,
    "block.1.rd.bytes": 1,
    "block.1.wr.bytes": 2,
}


def test_counters_are_summed_over_devices_and_memory_is_the_guests_view() -> None:
    sample, _ = sample_from_stats(STATS, timestamp=5.0, monotonic=100.0, previous=None, uptime=0.0, memory_total=1)
    assert (sample.net_rx_bytes, sample.net_tx_bytes) == (105, 17)
    assert (sample.disk_read_bytes, sample.disk_write_bytes) == (1001, 2002)
    assert sample.memory_total == 131072 * 1024
    assert sample.memory_used == (120000 - 80000) * 1024
    assert sample.timestamp == 5.0


def test_cpu_is_the_delta_over_wall_time_and_vcpus() -> None:
    previous = CpuReading(at=98.0, cpu_time_ns=3_000_000_000)
    sample, reading = sample_from_stats(
        STATS, timestamp=0, monotonic=100.0, previous=previous, uptime=50, memory_total=1
    )
    # 1 s of cpu over 2 s on 2 vCPUs
    assert sample.cpu_utilization == 25.0
    assert reading == CpuReading(100.0, 4_000_000_000)


def test_first_reading_averages_since_boot_and_is_clamped() -> None:
    sample, _ = sample_from_stats(STATS, timestamp=0, monotonic=1.0, previous=None, uptime=4.0, memory_total=1)
    assert sample.cpu_utilization == 50.0  # 4 s of cpu over 4 s on 2 vCPUs
    busy = dict(STATS, **{"cpu.time": 100_000_000_000})
    sample, _ = sample_from_stats(busy, timestamp=0, monotonic=1.0, previous=None, uptime=1.0, memory_total=1)
    assert sample.cpu_utilization == 100.0


def test_counter_reset_does_not_give_negative_cpu() -> None:
    previous = CpuReading(at=1.0, cpu_time_ns=9_000_000_000)  # a restore: new QEMU process
    sample, _ = sample_from_stats(STATS, timestamp=0, monotonic=2.0, previous=previous, uptime=10.0, memory_total=1)
    assert 0.0 <= sample.cpu_utilization <= 100.0


def test_without_guest_stats_memory_falls_back_to_rss_capped_at_total() -> None:
    stats = {"balloon.current": 1024, "balloon.rss": 4096}
    sample, _ = sample_from_stats(stats, timestamp=0, monotonic=0, previous=None, uptime=0, memory_total=1)
    assert sample.memory_used == sample.memory_total == 1024 * 1024
    assert sample.cpu_utilization == 0.0


def test_no_balloon_uses_the_domains_size() -> None:
    sample, _ = sample_from_stats({}, timestamp=0, monotonic=0, previous=None, uptime=0, memory_total=777)
    assert (sample.memory_used, sample.memory_total) == (0, 777)


def test_idle_sample_is_zero_but_total() -> None:
    sample = idle_sample(3.0, 2048)
    assert sample.memory_total == 2048
    assert (sample.cpu_utilization, sample.memory_used, sample.net_rx_bytes, sample.disk_write_bytes) == (0, 0, 0, 0)


def test_counters_carry_on_from_a_base() -> None:
    from vmws.backends.libvirt.metrics import counters_of, with_base

    sample, _ = sample_from_stats(STATS, timestamp=0, monotonic=0, previous=None, uptime=0, memory_total=1)
    assert with_base(sample, (0, 0, 0, 0)) is sample
    moved = with_base(sample, (1, 2, 3, 4))
    assert counters_of(moved) == (106, 19, 1004, 2006)
    assert moved.memory_used == sample.memory_used
