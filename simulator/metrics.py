"""Metrics computed lazily, when sampled: no per-VM timers and no per-VM generator.

A reading is a pure function of (fleet salt, VM name, clock time, seconds the guest has
been running since boot, what it is doing). Noise comes from a stateless integer hash
of those inputs rather than a ``random.Random`` per VM (about 2.5 KiB of state each;
issue 3 asks for 10,000 VMs in under 2 KiB apiece), so the same seed gives the same
curve whatever order VMs are sampled in. Cumulative counters are ``r·a + r/(2w)·sin(w·a)``
of the running seconds ``a``: their slope stays between r/2 and 3r/2, so they only grow
while the guest runs and stand still when it does not.
"""

from __future__ import annotations

import enum
import math
import zlib

from vmws.backend import MetricsSample

__all__ = ["Activity", "noise", "sample_metrics"]

_MASK = (1 << 64) - 1
_TWO_PI = 2 * math.pi
_COUNTER_PERIOD = 300.0  # seconds of running time per wobble of a counter's rate
_BOOT_DISK_BYTES = 180 * 1024 * 1024  # what a cloud image reads to reach its login prompt


class Activity(enum.Enum):
    OFF = "off"  # stopped, suspended, error: zeros but memory_total
    BOOTING = "booting"
    IDLE = "idle"  # running, nothing special
    FLOOD = "flood"  # a console command printing flat out: one vCPU busy
    PAUSED = "paused"  # halted in memory: no CPU, memory and counters as they were


def noise(salt: int, key: int, tick: int) -> float:
    """A uniform value in [0, 1), the same for the same inputs (splitmix64 finaliser)."""
    x = (salt * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + tick * 0x94D049BB133111EB) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x / float(1 << 64)


def _counter(rate: float, running: float) -> int:
    w = _TWO_PI / _COUNTER_PERIOD
    return int(rate * running + rate / (2 * w) * math.sin(w * running))


def sample_metrics(
    *,
    salt: int,
    name: str,
    now: float,
    running_seconds: float,
    activity: Activity,
    memory_total: int,
    vcpus: int,
    boot_progress: float = 1.0,
) -> MetricsSample:
    """One reading for VM ``name``; ``running_seconds`` counts time running since boot."""
    if activity is Activity.OFF:
        return MetricsSample(now, 0.0, 0, memory_total, 0, 0, 0, 0)
    key = zlib.crc32(name.encode())
    tick = int(now)
    trait = [noise(salt, key, -1 - i) for i in range(5)]  # fixed per VM: its "character"
    jitter = noise(salt, key, tick)

    if activity is Activity.BOOTING:
        cpu = 60.0 + 35.0 * jitter
    elif activity is Activity.FLOOD:
        # `yes` keeps one vCPU at 100 %; the rest idle along
        cpu = min(100.0, 100.0 / vcpus + 2.0 * jitter + (3.0 if vcpus > 1 else 0.0))
    elif activity is Activity.PAUSED:
        cpu = 0.0
    else:
        base = 3.0 + 25.0 * trait[0]
        wave = 1.0 + 0.3 * math.sin(_TWO_PI * now / 600.0 + _TWO_PI * trait[1])
        cpu = min(100.0, max(0.5, base * wave + 8.0 * (jitter - 0.5)))

    fraction = 0.25 + 0.35 * trait[2] + 0.04 * math.sin(_TWO_PI * now / 900.0) + 0.02 * jitter
    if activity is Activity.PAUSED:
        fraction = 0.25 + 0.35 * trait[2]  # nothing moves while halted
    fraction *= 0.4 + 0.6 * min(1.0, max(0.0, boot_progress))
    memory_used = min(memory_total, max(0, int(memory_total * fraction)))

    rx_rate = 2_000 + 60_000 * trait[3]
    disk_rate = 4_000 + 40_000 * trait[4]
    boot_read = int(_BOOT_DISK_BYTES * min(1.0, max(0.0, boot_progress)))
    return MetricsSample(
        timestamp=now,
        cpu_utilization=round(cpu, 2),
        memory_used=memory_used,
        memory_total=memory_total,
        net_rx_bytes=_counter(rx_rate, running_seconds),
        net_tx_bytes=_counter(rx_rate * 0.4, running_seconds),
        disk_read_bytes=boot_read + _counter(disk_rate * 0.3, running_seconds),
        disk_write_bytes=_counter(disk_rate, running_seconds),
    )
