"""Metrics computed lazily, when sampled: no per-VM timers and no per-VM generator.

A reading is a pure function of the VM's ``MetricsModel`` (its profile plus a few
seeded per-VM "traits", computed once when the VM is made), the clock time, the
seconds the guest has been running since boot, and what it is doing. Noise comes from
a stateless integer hash rather than a ``random.Random`` per VM (about 2.5 KiB of
state each; 10,000 VMs must cost under 2 KiB apiece), so the same seed gives the same
curve whatever order VMs are sampled in.

Cumulative counters are functions of the running seconds ``a`` whose slope never goes
below zero (``r·a + r/(2w)·sin(w·a)`` has slope between r/2 and 3r/2; a batch job adds
a piecewise-linear term), so they only grow while the guest runs and stand still when
it does not. They count from power-on: a reboot restarts the curve on top of what the
earlier boots counted (``counters_of``), as QEMU's counters carry on across a reboot. Profiles (``simulator.fleet.PROFILES``):

- ``idle``: a few percent CPU with a slow wobble, flat memory, a trickle of I/O;
- ``web``: a diurnal sine (``period``, 24 h by default) with a 10-minute wobble and
  noise; traffic follows a sine of running time;
- ``batch``: quiet, then every ``period`` a job runs for ``burst`` at 85-98 % CPU,
  writing to disk at the profile's ``disk`` rate;
- ``leak``: memory ramps from ``memory`` to 95 % over ``period`` of running time, then
  drops back (the OOM killer restarted the service); CPU rises with it.
"""

from __future__ import annotations

import enum
import math
import zlib
from dataclasses import dataclass

from simulator.fleet import MetricsProfile, ProfileKind
from vmws.backend import MetricsSample

__all__ = ["Activity", "Extra", "MetricsModel", "counters_of", "noise", "sample_metrics"]

_MASK = (1 << 64) - 1
_TWO_PI = 2 * math.pi
_WOBBLE = 600.0  # seconds per short CPU wobble
_BOOT_DISK_BYTES = 180 * 1024 * 1024  # what a cloud image reads to reach its login prompt
_LEAK_TOP = 0.95
_DISK_OMEGA = 2 * math.pi / 300.0  # disk traffic wobbles every 5 minutes of running time


class Activity(enum.Enum):
    OFF = "off"  # stopped, suspended, error: zeros but memory_total
    BOOTING = "booting"
    IDLE = "idle"  # running, doing what its profile says
    FLOOD = "flood"  # a console command running flat out: one vCPU busy
    PAUSED = "paused"  # halted in memory: no CPU, memory and counters as they were


@dataclass(frozen=True, slots=True)
class Extra:
    """What comes on top of the profile's curve: faults and console commands (bytes
    are totals since boot, CPU is percentage points), or the counters of the boots
    before this one since power-on (``counters_of``)."""

    cpu: float = 0.0
    net_rx: int = 0
    net_tx: int = 0
    disk_read: int = 0
    disk_write: int = 0

    def __add__(self, other: Extra) -> Extra:
        return Extra(
            self.cpu + other.cpu,
            self.net_rx + other.net_rx,
            self.net_tx + other.net_tx,
            self.disk_read + other.disk_read,
            self.disk_write + other.disk_write,
        )


def counters_of(sample: MetricsSample) -> Extra:
    """A reading's cumulative counters, to carry across a reboot (the QEMU process
    stays, so its counters go on): the next boot's readings start from these."""
    return Extra(
        net_rx=sample.net_rx_bytes,
        net_tx=sample.net_tx_bytes,
        disk_read=sample.disk_read_bytes,
        disk_write=sample.disk_write_bytes,
    )


def noise(salt: int, key: int, tick: int) -> float:
    """A uniform value in [0, 1), the same for the same inputs (splitmix64 finaliser)."""
    x = (salt * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + tick * 0x94D049BB133111EB) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x / float(1 << 64)


def _busy_time(x: float, period: float, burst: float) -> float:
    """Seconds spent inside jobs in [0, x) when a ``burst``-long job starts every ``period``."""
    whole, part = divmod(x, period)
    return whole * burst + min(part, burst)


class MetricsModel:
    """One VM's fixed metric parameters, computed once: its profile and its traits."""

    __slots__ = (
        "key",
        "kind",
        "vcpus",
        "memory_total",
        "cpu",
        "phase",
        "memory",
        "net",
        "disk",
        "period",
        "burst",
        "offset",
        "omega",
    )

    def __init__(self, salt: int, name: str, profile: MetricsProfile, vcpus: int, memory_total: int) -> None:
        key = zlib.crc32(name.encode())
        trait = [noise(salt, key, -1 - i) for i in range(5)]  # this VM's "character"
        self.key = key
        self.kind = profile.kind
        self.vcpus = vcpus
        self.memory_total = memory_total
        self.cpu = profile.cpu * (0.6 + 0.8 * trait[0])
        self.phase = _TWO_PI * trait[1]
        self.memory = min(0.9, profile.memory * (0.8 + 0.4 * trait[2]))
        self.net = profile.net * (0.5 + trait[3])
        self.disk = profile.disk * (0.5 + trait[4])
        self.period = profile.period
        self.burst = profile.burst
        self.offset = profile.period * trait[1]  # where in its cycle a batch or leak VM boots
        period = profile.period if profile.kind is ProfileKind.WEB else 300.0
        self.omega = _TWO_PI / period


def sample_metrics(
    model: MetricsModel,
    salt: int,
    now: float,
    running: float,
    activity: Activity,
    boot_progress: float = 1.0,
    extra: Extra | None = None,
) -> MetricsSample:
    """One reading; ``running`` counts seconds the guest has run since it booted."""
    total = model.memory_total
    if activity is Activity.OFF:
        return MetricsSample(now, 0.0, 0, total, 0, 0, 0, 0)
    # hot path: 10,000 of these must take well under 100 ms, hence the local names
    sin = math.sin
    kind = model.kind
    paused = activity is Activity.PAUSED
    jitter = noise(salt, model.key, int(now))

    # memory: a function of running time (plus noise while running), so a paused
    # guest's memory stands still
    fraction = model.memory * (1.0 + 0.06 * sin(_TWO_PI * running / 900.0 + model.phase))
    fraction += 0.01 if paused else 0.02 * jitter
    job = False
    ramp = 0.0
    if kind is ProfileKind.BATCH:
        job = (running + model.offset) % model.period < model.burst
        if job:
            fraction += 0.25
    elif kind is ProfileKind.LEAK:
        ramp = ((running + model.offset) % model.period) / model.period
        fraction += (_LEAK_TOP - model.memory) * ramp
    booting = activity is Activity.BOOTING
    if booting:
        fraction *= 0.4 + 0.6 * min(1.0, max(0.0, boot_progress))
    memory_used = min(total, max(0, int(total * fraction)))

    if booting:
        cpu = 60.0 + 35.0 * jitter
    elif paused:
        cpu = 0.0
    else:
        base = model.cpu
        wobble = 1.0 + 0.3 * sin(_TWO_PI * now / _WOBBLE + model.phase)
        if kind is ProfileKind.WEB:
            diurnal = 1.0 + 0.6 * sin(_TWO_PI * now / model.period + model.phase)
            cpu = base * diurnal * wobble + base * 0.3 * (jitter - 0.5)
        elif job:
            cpu = 85.0 + 13.0 * jitter
        elif kind is ProfileKind.LEAK:
            cpu = base * wobble * (1.0 + 1.5 * ramp) + 2.0 * (jitter - 0.5)
        else:
            cpu = base * wobble + min(base, 2.0) * (jitter - 0.5)
        if activity is Activity.FLOOD:
            # `yes` keeps one vCPU at 100 %; the rest go on as before
            cpu = 100.0 / model.vcpus + cpu * (1.0 - 1.0 / model.vcpus)
    if extra is not None:
        cpu += extra.cpu
    cpu = min(100.0, max(0.0 if paused else 0.1, cpu))

    omega = model.omega
    net = model.net
    rx = net * running + net / (2 * omega) * sin(omega * running)
    disk = model.disk
    if kind is ProfileKind.BATCH:
        # jobs write at the profile's rate; between them, 1 % of it
        period, burst, offset = model.period, model.burst, model.offset
        busy = _busy_time(running + offset, period, burst) - _busy_time(offset, period, burst)
        written = disk * 0.01 * running + disk * 0.99 * busy
    else:
        written = disk * running + disk / (2 * _DISK_OMEGA) * sin(_DISK_OMEGA * running)
    boot_read = _BOOT_DISK_BYTES if boot_progress >= 1.0 else int(_BOOT_DISK_BYTES * max(0.0, boot_progress))
    net_rx, net_tx = int(rx), int(rx * 0.4)
    disk_read, disk_written = boot_read + int(written * 0.3), int(written)
    if extra is not None:
        net_rx += extra.net_rx
        net_tx += extra.net_tx
        disk_read += extra.disk_read
        disk_written += extra.disk_write
    return MetricsSample(now, round(cpu, 2), memory_used, total, net_rx, net_tx, disk_read, disk_written)
