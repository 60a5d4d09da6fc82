"""The per-VM lease (``vmws.cluster.leases``) against a real ``redis-server``: one holder
at a time, an increasing fencing counter, the fencing check that makes a node that lost
its lease (paused past the TTL) stand down, and a release that a candidate takes."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from loadtests.cluster_procs import RedisProcess
from vmws.cluster.leases import Leases, lease_key


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    async def gained(self, vm: str, fence: int) -> None:
        self.events.append(("gained", vm, fence))

    async def lost(self, vm: str) -> None:
        self.events.append(("lost", vm, 0))


def test_one_holder_a_fencing_counter_and_a_holder_that_lost_its_lease_stands_down(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        a_seen, b_seen = Recorder(), Recorder()

        async def reachable() -> set[str]:
            return {"vm-1"}

        a = Leases(client, "inc-a", reachable, a_seen.gained, a_seen.lost)
        b = Leases(client, "inc-b", reachable, b_seen.gained, b_seen.lost)
        await a.step(renew=False)
        await b.step(renew=False)
        assert a_seen.events == [("gained", "vm-1", 1)] and b_seen.events == []
        assert await client.get(lease_key("vm-1")) == b"inc-a 1"
        assert await a.holds("vm-1") and not await b.holds("vm-1")

        # a is paused past the TTL: its lease expires and b takes the VM, fence 2.
        await client.delete(lease_key("vm-1"))
        await b.step(renew=False)
        assert b_seen.events == [("gained", "vm-1", 2)]
        # Back, a renews nothing and, before acting, finds the lease is not its own.
        await a.step(renew=True)
        assert a_seen.events[-1] == ("lost", "vm-1", 0) and "vm-1" not in a.owned
        assert not await a.holds("vm-1")
        await a.step(renew=False)
        assert "vm-1" not in a.owned  # b holds it

        # b drains: it releases, stops taking, and a takes the VM at once (fence 3).
        assert await b.release_all() == ["vm-1"]
        assert await client.get(lease_key("vm-1")) is None
        await b.step(renew=False)
        assert "vm-1" not in b.owned
        await a.step(renew=False)
        assert a_seen.events[-1] == ("gained", "vm-1", 3)
        await client.aclose()

    asyncio.run(scenario())


def test_a_holder_cut_off_from_redis_for_a_ttl_gives_its_vms_up(redis_server: RedisProcess) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        seen = Recorder()
        now = [0.0]

        async def reachable() -> set[str]:
            return {"vm-1"}

        leases = Leases(client, "inc-a", reachable, seen.gained, seen.lost, clock=lambda: now[0])
        await leases.step(renew=False)
        assert "vm-1" in leases.owned
        await client.aclose()
        dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens
        leases.redis = dead
        now[0] = 3.0
        await leases.step(renew=True)
        assert "vm-1" in leases.owned  # one failed renewal: the lease still has 7 s
        now[0] = 8.0
        await leases.step(renew=True)
        assert "vm-1" not in leases.owned and seen.events[-1] == ("lost", "vm-1", 0)
        await dead.aclose()

    asyncio.run(scenario())
