"""Console viewer caps that hold across the cluster (``--max-console-viewers``,
``--max-console-viewers-per-user``), counted in Redis.

Each VM has a sorted set ``vmws:vm:{NAME}:viewers``: one member per console socket on
any node (``SESSION\\nUSER``), scored with the time its seat expires (epoch ms). A node
takes a seat with one script (drop expired seats, count all and the user's, add), so two
nodes admitting at once cannot both take the last seat. Every ``REFRESH_INTERVAL`` a
node pushes the expiry of its own seats ``SEAT_TTL`` ahead; a node that dies stops
refreshing and its viewers age out within ``SEAT_TTL``. A socket that leaves gives its
seat back at once.

If Redis cannot be reached, a seat is not refused for it: the node-local count (checked
first, always) is then all that holds, and one warning says so. Until a refresh gets
through again, seats are taken without asking Redis (no timeout per socket); that
refresh writes them all to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from vmws.cluster.membership import NODE_TTL, REFRESH_INTERVAL
from vmws.cluster.revocations import stop_task

__all__ = ["ConsoleSeats", "SEAT_TTL", "seats_key"]

log = logging.getLogger("vmws")

SEAT_TTL = NODE_TTL  # seconds a seat outlives its node's last refresh
_DEGRADED_RETRY = 1.0  # seconds between refreshes while Redis is unreachable

# KEYS[1] the VM's set; ARGV: now (ms), expiry (ms), member, user, cap, per-user cap,
# key TTL (ms). Returns 0 (seated), 1 (console full) or 2 (this user's seats full).
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local seated = redis.call('ZRANGE', KEYS[1], 0, -1)
if #seated >= tonumber(ARGV[5]) then return 1 end
local mine = 0
for _, member in ipairs(seated) do
  local cut = string.find(member, '\\n', 1, true)
  if cut and string.sub(member, cut + 1) == ARGV[4] then mine = mine + 1 end
end
if mine >= tonumber(ARGV[6]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 0
"""

FULL = {1: "console", 2: "user"}


def seats_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:viewers"


def _member(session: str, user: str) -> str:
    # Session ids are hex: the first newline ends it, whatever the user's name holds.
    return f"{session}\n{user}"


class ConsoleSeats:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._held: dict[str, set[str]] = {}  # VM → members seated from this node
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._degraded = False  # Redis unreachable: counting on this node only (warned once)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._refreshing(), name="console-seats")

    async def stop(self) -> None:
        await stop_task(self._task)
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def take(self, vm: str, session: str, user: str, cap: int, per_user: int) -> str | None:
        """Seat ``session`` of ``user`` on ``vm``'s console: None, or which cap is full
        (``"console"`` or ``"user"``). Redis down: seated (the local count holds)."""
        from redis.exceptions import RedisError

        member = _member(session, user)
        now_ms = int(time.time() * 1000)
        if self._degraded:
            # Known down: no wait on it per console socket (a Redis that drops packets
            # costs its 2 s timeout each time); the refresh loop finds it back.
            self._held.setdefault(vm, set()).add(member)
            return None
        try:
            outcome = await self._take(
                keys=[seats_key(vm)],
                args=[now_ms, now_ms + SEAT_TTL * 1000, member, user, cap, per_user, SEAT_TTL * 1000],
            )
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_down(exc)
        else:
            self._redis_up()
            if int(outcome) in FULL:
                return FULL[int(outcome)]
        self._held.setdefault(vm, set()).add(member)
        return None

    def give_back(self, vm: str, session: str, user: str) -> None:
        """Free the seat now (in the background); if Redis misses it, it ages out."""
        member = _member(session, user)
        held = self._held.get(vm)
        if held is None or member not in held:
            return
        held.discard(member)
        if not held:
            del self._held[vm]
        task = asyncio.ensure_future(self._remove(vm, member))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def seated(self, vm: str) -> int:
        """Seats this node holds on ``vm``'s console."""
        return len(self._held.get(vm, ()))

    async def _remove(self, vm: str, member: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self.redis.zrem(seats_key(vm), member)
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_down(exc)

    async def _refreshing(self) -> None:
        while True:
            # While Redis is away, look for it every second: the seats taken meanwhile
            # should count on the other nodes as soon as it answers.
            await asyncio.sleep(_DEGRADED_RETRY if self._degraded else REFRESH_INTERVAL)
            await self.refresh()

    async def refresh(self) -> None:
        """Push this node's seats' expiry ahead (and write back any Redis lost)."""
        from redis.exceptions import RedisError

        if not self._held and not self._degraded:
            return
        expiry = int(time.time() * 1000) + SEAT_TTL * 1000
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.ping()  # answers even with no seat to refresh: Redis is back
                for vm, members in list(self._held.items()):
                    pipe.zadd(seats_key(vm), dict.fromkeys(members, expiry))
                    pipe.pexpire(seats_key(vm), SEAT_TTL * 1000)
                await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_down(exc)
        else:
            self._redis_up()

    def _redis_down(self, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "console viewer caps counted on this node only: Redis is unreachable (%s)",
                str(exc) or type(exc).__name__,
            )

    def _redis_up(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("console viewer caps hold across the cluster again: Redis answers")
