"""``--shard K/N``: which of the simulated fleet's VMs this node simulates.

A VM is in shard K of N when the first 8 bytes of the SHA-256 of its UTF-8 name, read
as a big-endian unsigned integer, are K − 1 modulo N. The hash depends on the name
only, so N nodes given 1/N … N/N serve every VM exactly once, on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from simulator.fleet import FleetSpec

__all__ = ["Shard", "parse_shard", "shard_index", "shard_fleet"]


@dataclass(frozen=True, slots=True)
class Shard:
    k: int  # from 1
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def holds(self, name: str) -> bool:
        return shard_index(name, self.n) == self.k - 1


def parse_shard(text: str) -> Shard:
    """``"K/N"`` → ``Shard``, or ``ValueError`` naming what is wrong."""
    k_text, slash, n_text = text.strip().partition("/")
    if not slash or not k_text.strip().isdigit() or not n_text.strip().isdigit():
        raise ValueError(f"--shard must be K/N with whole numbers, like 1/3 (got {text!r})")
    k, n = int(k_text), int(n_text)
    if n < 1:
        raise ValueError(f"--shard {text}: N must be at least 1")
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text}: K counts from 1 and must be at most N ({n})")
    return Shard(k, n)


def shard_index(name: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % n


def shard_fleet(fleet: FleetSpec, shard: Shard) -> FleetSpec:
    """The fleet's VMs of ``shard``; timeline events keep only those VMs (an event left
    with none is dropped)."""
    vms = tuple(vm for vm in fleet.vms if shard.holds(vm.name))
    events = []
    for event in fleet.events:
        mine = tuple(name for name in event.vms if shard.holds(name))
        if mine:  # a ``pick`` larger than what is left picks them all (the timeline's rule)
            events.append(dataclasses.replace(event, vms=mine))
    return dataclasses.replace(fleet, vms=vms, events=tuple(events))
