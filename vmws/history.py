"""Bounded metrics history per VM: recent samples as taken, older ones as 1-minute averages.

Two tiers per VM, each a ring of fixed capacity in one typed array (64 bytes a sample,
no Python object per sample), so a VM's memory is bounded whatever runs:

- recent: every sample of the last ``recent_seconds`` (default 10 min), at whatever
  rate it was taken (the metrics interval while watched, the fleet interval otherwise);
- minutes: one entry per minute for ``minute_count`` minutes (default 24 h). CPU and
  memory used are the minute's averages; memory total and the byte counters are the
  minute's last value, so counters stay cumulative (a mean of a counter means nothing).

Rings grow as samples arrive (a VM sampled for 5 minutes holds 5 minutes' worth), and
a VM's history goes when the VM does (``forget``). Sans I/O: no clock, no backend.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

from vmws.backend import MetricsSample
from vmws.protocol import iso_timestamp

__all__ = ["HistoryLimits", "MetricsHistory", "VMHistory", "SAMPLE_BYTES", "Row", "sample_object"]

# A sample is 8 float64 in a row: time, CPU percent, memory used and total, network
# rx and tx, disk read and write (byte counts are exact in a float64 up to 8 PiB).
_STRIDE = 8
SAMPLE_BYTES = 8 * _STRIDE

# One held sample: wall-clock time, CPU percent, the six byte counts.
Row = tuple[float, float, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    recent_seconds: float = 600.0
    # Samples the recent tier can hold: recent_seconds at the fastest rate (the metrics interval).
    recent_capacity: int = 300
    minute_count: int = 24 * 60

    @classmethod
    def for_interval(
        cls, metrics_interval: float, recent_seconds: float = 600.0, minute_count: int = 24 * 60
    ) -> HistoryLimits:
        return cls(recent_seconds, max(1, math.ceil(recent_seconds / metrics_interval)), minute_count)


class _Ring:
    """Up to ``capacity`` samples in one flat ``array('d')``, overwritten oldest first.

    One array per tier, grown as samples come, keeps a VM that was just sampled once at a
    few hundred bytes (the scale bench holds 10,000 VMs to < 2 KiB each)."""

    __slots__ = ("capacity", "values", "start", "count")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.values = array("d")
        self.start = 0  # the oldest sample once the ring is full
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, row: tuple[float, ...]) -> None:
        if self.count < self.capacity:
            self.values.extend(row)
            self.count += 1
            return
        i = self.start * _STRIDE
        self.values[i : i + _STRIDE] = array("d", row)
        self.start = (self.start + 1) % self.capacity

    def rows(self) -> list[Row]:
        """Every sample, oldest first."""
        n = self.count
        order = [*range(self.start, n), *range(self.start)]
        v = self.values
        return [
            (v[i * _STRIDE], v[i * _STRIDE + 1], tuple(int(x) for x in v[i * _STRIDE + 2 : (i + 1) * _STRIDE]))
            for i in order
        ]

    def _last_index(self) -> int:
        return ((self.start - 1) % self.count) * _STRIDE

    def last_time(self) -> float | None:
        return self.values[self._last_index()] if self.count else None

    def last(self) -> tuple[float, ...] | None:
        if not self.count:
            return None
        i = self._last_index()
        return tuple(self.values[i : i + _STRIDE])

    def nbytes(self) -> int:
        return self.values.buffer_info()[1] * self.values.itemsize


class VMHistory:
    """One VM's two tiers and the minute being averaged."""

    __slots__ = ("recent", "minutes", "_minute", "_cpu_sum", "_mem_sum", "_count", "_limits")

    def __init__(self, limits: HistoryLimits) -> None:
        self._limits = limits
        self.recent = _Ring(limits.recent_capacity)
        self.minutes: _Ring | None = None  # made when the first minute ends
        self._minute = -1  # the minute (epoch seconds // 60) being averaged
        self._cpu_sum = 0.0
        self._mem_sum = 0
        self._count = 0

    @property
    def latest(self) -> MetricsSample | None:
        row = self.recent.last()
        if row is None:
            return None
        t, cpu, used, total, rx, tx, read, write = row
        return MetricsSample(t, cpu, int(used), int(total), int(rx), int(tx), int(read), int(write))

    def add(self, sample: MetricsSample, t: float) -> None:
        """Record ``sample`` taken at wall-clock ``t``; a sample not newer than the last is dropped."""
        last = self.recent.last_time()
        if last is not None and t <= last:
            return
        minute = int(t // 60)
        if minute != self._minute:
            self._close_minute()
            self._minute = minute
        self.recent.append(
            (
                t,
                sample.cpu_utilization,
                sample.memory_used,
                sample.memory_total,
                sample.net_rx_bytes,
                sample.net_tx_bytes,
                sample.disk_read_bytes,
                sample.disk_write_bytes,
            )
        )
        self._cpu_sum += sample.cpu_utilization
        self._mem_sum += sample.memory_used
        self._count += 1

    def _close_minute(self) -> None:
        last = self.recent.last()
        if self._count == 0 or last is None:
            return
        if self.minutes is None:
            self.minutes = _Ring(self._limits.minute_count)
        # Stamped at the minute's start, so averages line up whatever the sample rate;
        # memory total and the counters are the minute's last values.
        self.minutes.append((self._minute * 60.0, self._cpu_sum / self._count, self._mem_sum // self._count, *last[3:]))
        self._cpu_sum, self._mem_sum, self._count = 0.0, 0, 0

    def since(self, start: float, now: float, recent_seconds: float) -> list[Row]:
        """Samples from ``start`` on, oldest first: minute averages up to where the recent
        tier begins (it covers at most ``recent_seconds`` before ``now``), then recent samples."""
        recent_from = max(start, now - recent_seconds)
        recent = [row for row in self.recent.rows() if row[0] >= recent_from]
        # A minute is shown when it overlaps [start, ...) and ended before the first recent sample.
        limit = recent[0][0] if recent else now
        minutes = self.minutes.rows() if self.minutes is not None else []
        return [row for row in minutes if start < row[0] + 60 <= limit] + recent

    def nbytes(self) -> int:
        """Bytes held by the sample arrays (the fixed per-VM overhead is measured by the bench)."""
        return self.recent.nbytes() + (self.minutes.nbytes() if self.minutes is not None else 0)


class MetricsHistory:
    """Every VM's history, by name."""

    def __init__(self, limits: HistoryLimits) -> None:
        self.limits = limits
        self._vms: dict[str, VMHistory] = {}

    def record(self, vm: str, sample: MetricsSample, t: float) -> None:
        history = self._vms.get(vm)
        if history is None:
            history = self._vms[vm] = VMHistory(self.limits)
        history.add(sample, t)

    def latest(self, vm: str) -> MetricsSample | None:
        history = self._vms.get(vm)
        return history.latest if history is not None else None

    def latest_cpu_memory(self, vm: str) -> tuple[float, int, int] | None:
        """The last sample's CPU percent, memory used and total, without building a sample
        (what a fleet summary needs of each VM, 10,000 times an interval)."""
        history = self._vms.get(vm)
        row = history.recent.last() if history is not None else None
        return None if row is None else (row[1], int(row[2]), int(row[3]))

    def since(self, vm: str, seconds: float, now: float) -> list[Row]:
        history = self._vms.get(vm)
        if history is None:
            return []
        return history.since(now - seconds, now, self.limits.recent_seconds)

    def forget(self, vm: str) -> None:
        self._vms.pop(vm, None)

    def __contains__(self, vm: object) -> bool:
        return vm in self._vms

    def __len__(self) -> int:
        return len(self._vms)


def sample_object(row: Row) -> dict[str, Any]:
    """A held sample as ``GET /api/vms/{name}/metrics`` serves it: the ``metrics``
    message's ``data`` plus its ``timestamp``."""
    t, cpu, (used, total, rx, tx, read, write) = row
    return {
        "timestamp": iso_timestamp(t),
        "cpu": {"utilization": round(cpu, 2)},
        "memory": {"used": used, "total": total},
        "network": {"rxBytes": rx, "txBytes": tx},
        "disk": {"readBytes": read, "writeBytes": write},
    }
