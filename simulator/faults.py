"""What a VM has been scripted to do wrong: armed faults and running I/O bursts.

A ``Faults`` object exists only for VMs a timeline has touched (most VMs of a big
fleet never get one). Armed faults fire once, at the next chance: the next graceful
stop hangs, the next boot sticks, the next ``times`` commands fail. Bursts add to the
metrics counters lazily, as functions of the guest's running seconds, like the
profiles do: no timers, and paused time does not count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from simulator.metrics import Extra
from vmws.backend import Action

__all__ = ["BurstKind", "Burst", "Faults", "DEFAULT_RATES"]


class BurstKind(enum.Enum):
    DISK = "disk"
    NETWORK = "network"


DEFAULT_RATES = {BurstKind.DISK: 50.0 * 2**20, BurstKind.NETWORK: 12.5e6}  # 50 MiB/s; 100 Mbit/s
_BURST_CPU = {BurstKind.DISK: 15.0, BurstKind.NETWORK: 10.0}  # percentage points while it lasts


@dataclass(frozen=True, slots=True)
class Burst:
    """``rate`` bytes/s for ``duration`` seconds of running time from ``start``."""

    kind: BurstKind
    start: float
    duration: float
    rate: float

    def bytes_at(self, running: float) -> int:
        return int(self.rate * min(self.duration, max(0.0, running - self.start)))

    def active(self, running: float) -> bool:
        return 0.0 <= running - self.start < self.duration


@dataclass(slots=True)
class Faults:
    hang_shutdown: bool = False
    stuck_boot: bool = False
    fail_commands: int = 0
    fail_action: Action | None = None
    fail_message: str | None = None
    bursts: list[Burst] = field(default_factory=list)

    def take_failure(self, action: Action) -> str | None:
        """If the next command is to fail, consume that and return the message to give."""
        if self.fail_commands <= 0 or (self.fail_action is not None and self.fail_action is not action):
            return None
        self.fail_commands -= 1
        return self.fail_message or f"Command '{action.value}' failed: simulated fault (fail-next-command)"

    def extra(self, running: float, disk_written: int) -> Extra:
        """What the bursts (and the console's writes) add to a reading."""
        cpu = 0.0
        net = disk = 0
        for burst in self.bursts:
            if burst.active(running):
                cpu += _BURST_CPU[burst.kind]
            if burst.kind is BurstKind.DISK:
                disk += burst.bytes_at(running)
            else:
                net += burst.bytes_at(running)
        return Extra(cpu=cpu, net_rx=net, net_tx=net // 3, disk_write=disk + disk_written)
