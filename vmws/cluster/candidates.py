"""Which nodes reach which hypervisor hosts, and which VM names are on two hosts, cluster-wide.

Every refresh (3 s, with membership) a libvirt node writes, in one pipeline:

- ``vmws:host:HOST:candidates`` (hash node → last seen, epoch s; TTL 10 s): this node
  is a candidate owner of the host's VMs. A follower whose VM's owner died keeps the
  VM's sockets open only while a live candidate other than the dead node exists.
- ``vmws:vm:{NAME}:hosts`` (hash host → last seen; TTL 10 s) for each VM it reaches,
  read back in the same pipeline: a name seen on another host within the TTL is on two
  hosts, so it is served from neither (no node takes or keeps its lease) and reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["CANDIDATE_TTL", "Candidates", "host_key", "vm_hosts_key"]

CANDIDATE_TTL = 10.0


def host_key(host: str) -> str:
    return f"vmws:host:{host}:candidates"


def vm_hosts_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:hosts"


def _fresh(raw: dict[Any, Any], now: float) -> dict[str, float]:
    fresh = {}
    for key, value in raw.items():
        try:
            seen = float(value)
            name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        except (TypeError, ValueError):
            continue
        if now - seen <= CANDIDATE_TTL and len(name) <= 300:
            fresh[name] = seen
    return fresh


class Candidates:
    def __init__(self, redis: Any, node: str, *, wall: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.node = node
        self._wall = wall
        # VM name → the other hosts it was seen on (cluster-wide conflicts), last refresh.
        self.conflicts: dict[str, list[str]] = {}

    async def register(self, vm_hosts: dict[str, str]) -> None:
        """Say this node reaches ``vm_hosts`` (VM → host id); learn the conflicts."""
        now = self._wall()
        ttl = int(CANDIDATE_TTL * 1000)
        vms = sorted(vm_hosts)
        pipe = self.redis.pipeline(transaction=False)
        for host in sorted(set(vm_hosts.values())):
            pipe.hset(host_key(host), self.node, repr(now))
            pipe.pexpire(host_key(host), ttl)
        for vm in vms:
            pipe.hset(vm_hosts_key(vm), vm_hosts[vm], repr(now))
            pipe.pexpire(vm_hosts_key(vm), ttl)
            pipe.hgetall(vm_hosts_key(vm))
        results = await pipe.execute()
        seen_on = results[2 * len(set(vm_hosts.values())) :][2::3]
        conflicts = {}
        for vm, raw in zip(vms, seen_on, strict=True):
            others = sorted(h for h in _fresh(raw, now) if h != vm_hosts[vm])
            if others:
                conflicts[vm] = others
        self.conflicts = conflicts

    async def live(self, host: str, *, besides: str) -> list[str]:
        """The nodes that reach ``host`` now, ``besides`` left out."""
        raw = await self.redis.hgetall(host_key(host))
        return sorted(n for n in _fresh(raw, self._wall()) if n != besides)
