"""Who owns a libvirt VM in a cluster: a per-VM lease in Redis, with a fencing counter.

Every node that reaches a VM's hypervisor host is a candidate. Each second a candidate
tries to take the lease of every VM it reaches and nobody holds (one Lua script: if
``vmws:vm:{NAME}:lease`` does not exist, ``INCR vmws:vm:{NAME}:fence`` and ``SET`` the
lease to ``INCARNATION FENCE`` with ``PX`` 10 s — ``SET NX PX`` and the counter in one
step). The holder renews it every 3 s (only while the value is still its own), and
checks it (``holds``) before it acts on the VM: a node that was paused past the TTL
finds another value there and stands down instead of acting on a VM it lost. A node
that cannot renew for a TTL (Redis away) drops its leases, since it can no longer prove
them. Releasing (drain, shutdown) deletes the lease if it is still ours and tells the
candidates on ``vmws:leases:released`` so one takes the VM at once.

Why leases rather than rendezvous hashing over live candidates (docs/cluster.md): a
lease moves a VM only when its owner is gone or hands it over; a hash moves VMs every
time a node joins (each join would cut every console whose owner changes), and two
nodes that briefly disagree on who is live would both act on the VM. The fencing
counter orders the owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from vmws.cluster import wire

__all__ = [
    "ACQUIRE_INTERVAL",
    "LEASE_TTL",
    "RELEASED_CHANNEL",
    "RENEW_INTERVAL",
    "Leases",
    "fence_key",
    "lease_key",
]

log = logging.getLogger("vmws.cluster")

LEASE_TTL = 10.0  # seconds a lease lives without a renewal
RENEW_INTERVAL = 3.0
ACQUIRE_INTERVAL = 1.0  # how often a candidate looks for VMs nobody holds
RELEASED_CHANNEL = "vmws:leases:released"

# KEYS: lease, fence. ARGV: incarnation, TTL ms. The new value's fence, or 0 if held.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. fence, 'PX', ARGV[2])
return fence
"""
# KEYS: lease. ARGV: our value, TTL ms. 1 if still ours (renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


def lease_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:lease"


def fence_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:fence"


class Leases:
    """This node's leases. ``reachable`` names the VMs it may own; ``on_gained`` and
    ``on_lost`` are told (on the loop) when one is taken or is no longer ours."""

    def __init__(
        self,
        redis: Any,
        incarnation: str,
        reachable: Callable[[], Awaitable[set[str]]],
        on_gained: Callable[[str, int], Awaitable[None]],
        on_lost: Callable[[str], Awaitable[None]],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.incarnation = incarnation
        self._reachable = reachable
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._clock = clock
        self.owned: dict[str, str] = {}  # VM → our lease value ("INCARNATION FENCE")
        self.draining = False
        self._renewed_at = 0.0  # loop time of the last renewal Redis answered
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def fence(self, vm: str) -> int | None:
        value = self.owned.get(vm)
        return int(value.rsplit(" ", 1)[1]) if value is not None else None

    async def start(self) -> None:
        self._renewed_at = self._now()
        await self.step(renew=False)
        self._task = asyncio.create_task(self._running(), name="leases")

    def nudge(self) -> None:
        """Look for VMs nobody holds now (a node released some)."""
        self._wake.set()

    async def _running(self) -> None:
        last_renew = self._now()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), ACQUIRE_INTERVAL)
            self._wake.clear()
            renew = self._now() - last_renew >= RENEW_INTERVAL
            if renew:
                last_renew = self._now()
            try:
                await self.step(renew=renew)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end ownership for good: logged, next round
                log.exception("lease round failed")

    async def step(self, *, renew: bool) -> None:
        """One round: renew what we hold (when ``renew``), take what nobody holds."""
        from redis.exceptions import RedisError

        reachable = await self._reachable()
        for vm in [vm for vm in self.owned if vm not in reachable]:
            await self._give_up(vm, "no longer reachable from this node")
        try:
            if renew and self.owned:
                await self._renew_all()
            if not self.draining:
                await self._take([vm for vm in sorted(reachable) if vm not in self.owned])
        except (RedisError, OSError) as exc:
            if self.owned and self._now() - self._renewed_at > LEASE_TTL - RENEW_INTERVAL:
                log.warning(
                    "cannot renew VM leases (Redis: %s): giving up %d VMs another node may take",
                    exc,
                    len(self.owned),
                )
                for vm in list(self.owned):
                    await self._give_up(vm, None)
            return

    async def _renew_all(self) -> None:
        vms = list(self.owned)
        pipe = self.redis.pipeline(transaction=False)
        for vm in vms:
            pipe.eval(_RENEW, 1, lease_key(vm), self.owned[vm], int(LEASE_TTL * 1000))
        results = await pipe.execute()
        self._renewed_at = self._now()
        for vm, kept in zip(vms, results, strict=True):
            if not kept and vm in self.owned:
                await self._give_up(vm, "its lease was taken by another node")

    async def _take(self, vms: list[str]) -> None:
        if not vms:
            return
        pipe = self.redis.pipeline(transaction=False)
        for vm in vms:
            pipe.eval(_ACQUIRE, 2, lease_key(vm), fence_key(vm), self.incarnation, int(LEASE_TTL * 1000))
        results = await pipe.execute()
        self._renewed_at = self._now() if not self.owned else self._renewed_at
        for vm, fence in zip(vms, results, strict=True):
            if fence and not self.draining:
                self.owned[vm] = f"{self.incarnation} {int(fence)}"
                log.info("took the lease of VM %s (fence %d)", vm, int(fence))
                await self._on_gained(vm, int(fence))

    async def _give_up(self, vm: str, why: str | None) -> None:
        if self.owned.pop(vm, None) is None:
            return
        if why:
            log.warning("VM %s is no longer owned here: %s", vm, why)
        await self._on_lost(vm)

    async def holds(self, vm: str) -> bool:
        """The fencing check before acting: Redis still holds our lease of ``vm``."""
        value = self.owned.get(vm)
        if value is None:
            return False
        current = await self.redis.get(lease_key(vm))
        if current is not None and current.decode("utf-8", "replace") == value:
            return True
        await self._give_up(vm, "its lease is no longer ours")
        return False

    async def release_all(self) -> list[str]:
        """Stop taking leases and hand every one back (drain, shutdown); the VMs released."""
        self.draining = True
        vms = list(self.owned)
        if not vms:
            return []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for vm in vms:
                pipe.eval(_RELEASE, 1, lease_key(vm), self.owned[vm])
            pipe.publish(RELEASED_CHANNEL, wire.encode({"op": "released", "vms": len(vms)}))
            await asyncio.wait_for(pipe.execute(), 2)
        except Exception as exc:  # Redis away: the leases expire by themselves
            log.warning("VM leases not released (%s): other nodes take them within %g s", exc, LEASE_TTL)
        for vm in vms:
            await self._give_up(vm, None)
        return vms

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
