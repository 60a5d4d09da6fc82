"""libvirt statistics → ``MetricsSample`` (pure: a dict of stats in, a sample out).

The input is one domain's ``virConnectGetAllDomainStats`` record (``cpu.time``,
``vcpu.current``, ``balloon.*``, ``net.N.*``, ``block.N.*``), or an equivalent dict
built from the older per-call APIs. CPU utilisation is the cpu time used since the
previous reading divided by the wall time times the vCPU count; memory comes from the
balloon driver's guest statistics when the guest reports them (the stats period is set
in the domain XML), else from the QEMU process's resident size, capped at the total.
Network and disk are the sums over every interface and block device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from vmws.backend import MetricsSample

__all__ = ["CpuReading", "Counters", "sample_from_stats", "idle_sample", "counters_of", "with_base"]

KIB = 1024


@dataclass(frozen=True, slots=True)
class CpuReading:
    """The cpu time counter at one monotonic instant, kept for the next delta."""

    at: float
    cpu_time_ns: int


def _int(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return int(value) if isinstance(value, (int, float)) else 0


def _summed(stats: Mapping[str, Any], group: str, field: str) -> int:
    return sum(_int(stats, f"{group}.{i}.{field}") for i in range(_int(stats, f"{group}.count")))


def _memory(stats: Mapping[str, Any], fallback_total: int) -> tuple[int, int]:
    total = _int(stats, "balloon.current") * KIB or fallback_total
    available = _int(stats, "balloon.available") * KIB
    if available:
        # What the guest's `free` calls used: its memory minus what it could hand out.
        spare = stats.get("balloon.usable", stats.get("balloon.unused"))
        used = available - int(spare) * KIB if isinstance(spare, (int, float)) else 0
    else:
        used = _int(stats, "balloon.rss") * KIB
    return min(max(used, 0), total), total


def _cpu(
    stats: Mapping[str, Any], monotonic: float, previous: CpuReading | None, uptime: float
) -> tuple[float, CpuReading | None]:
    if "cpu.time" not in stats:
        return 0.0, previous
    cpu_ns = _int(stats, "cpu.time")
    vcpus = max(_int(stats, "vcpu.current"), 1)
    reading = CpuReading(monotonic, cpu_ns)
    if previous is not None and monotonic > previous.at and cpu_ns >= previous.cpu_time_ns:
        busy, wall = (cpu_ns - previous.cpu_time_ns) / 1e9, monotonic - previous.at
    elif uptime > 0:
        # First reading: the average since boot is better than claiming 0 %.
        busy, wall = cpu_ns / 1e9, uptime
    else:
        return 0.0, reading
    return min(max(busy / (wall * vcpus) * 100.0, 0.0), 100.0), reading


def sample_from_stats(
    stats: Mapping[str, Any],
    *,
    timestamp: float,
    monotonic: float,
    previous: CpuReading | None,
    uptime: float,
    memory_total: int,
) -> tuple[MetricsSample, CpuReading | None]:
    """A sample from ``stats`` of a running domain, and the cpu reading to keep."""
    cpu, reading = _cpu(stats, monotonic, previous, uptime)
    used, total = _memory(stats, memory_total)
    sample = MetricsSample(
        timestamp=timestamp,
        cpu_utilization=round(cpu, 2),
        memory_used=used,
        memory_total=total,
        net_rx_bytes=_summed(stats, "net", "rx.bytes"),
        net_tx_bytes=_summed(stats, "net", "tx.bytes"),
        disk_read_bytes=_summed(stats, "block", "rd.bytes"),
        disk_write_bytes=_summed(stats, "block", "wr.bytes"),
    )
    return sample, reading


def idle_sample(timestamp: float, memory_total: int) -> MetricsSample:
    """The sample of a VM that is not running: zeros but its memory size."""
    return MetricsSample(timestamp, 0.0, 0, memory_total, 0, 0, 0, 0)


# (net rx, net tx, disk read, disk write) bytes.
Counters = tuple[int, int, int, int]


def counters_of(sample: MetricsSample) -> Counters:
    return (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes)


def with_base(sample: MetricsSample, base: Counters) -> MetricsSample:
    """``sample`` with ``base`` added to its counters (they carry on across a restore)."""
    if not any(base):
        return sample
    rx, tx, rd, wr = base
    return replace(
        sample,
        net_rx_bytes=sample.net_rx_bytes + rx,
        net_tx_bytes=sample.net_tx_bytes + tx,
        disk_read_bytes=sample.disk_read_bytes + rd,
        disk_write_bytes=sample.disk_write_bytes + wr,
    )
