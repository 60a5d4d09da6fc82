"""Single-use tickets, so long-lived tokens stay out of URLs.

A client holding a token calls ``POST /api/tickets`` with ``Authorization: Bearer``
and gets a ticket valid for a few seconds, usable once as ``?token=`` on a WebSocket
URL (where browsers cannot set headers). The ticket carries the token's principal, and
lives ``min(TTL, the token's exp + leeway)``: it never outlives the token it came from.

Outstanding tickets are capped twice: per subject (``PER_SUBJECT_LIMIT``), so one user
cannot take the pool from everyone else, and in total (``limit``), so memory stays
bounded whatever the number of subjects.

``RedisTicketStore`` is the same store for a cluster (``docs/cluster.md``): tickets live
in Redis, so one bought on a node is redeemed once on any node (``GETDEL``), and the
per-subject cap holds cluster-wide: a ``ClusterAuthenticator`` redeems it there, in the
same asynchronous ``authenticate`` every handler awaits.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from vmws.auth import Permission, Principal, TokenVerifier, permission_set
from vmws.codes import CloseCode, ErrorCode
from vmws.errors import AuthError
from vmws.revocations import Revocations

__all__ = [
    "ticket_life",
    "TicketStore",
    "RedisTicketStore",
    "Authenticator",
    "ClusterAuthenticator",
    "ClusterUnavailable",
    "TICKET_PREFIX",
    "PER_SUBJECT_LIMIT",
]

log = logging.getLogger("vmws")

TICKET_PREFIX = "vmt_"
PER_SUBJECT_LIMIT = 100


def ticket_life(ttl: float, principal: Principal, now: float) -> float:
    """Seconds a ticket bought now lives: its TTL, cut short by its token's expiry
    (``expires_at`` includes the leeway), so a ticket never outlives its token."""
    return min(ttl, principal.expires_at - now)


class TicketStore:
    def __init__(
        self,
        ttl: float = 30.0,
        limit: int = 10_000,
        *,
        per_subject: int = PER_SUBJECT_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.per_subject = per_subject
        self._clock = clock  # ticket TTLs: immune to wall-clock steps
        self._wall = wall  # token expiry: an epoch time from the token
        self._tickets: dict[str, tuple[Principal, float]] = {}
        self._by_subject: dict[str, set[str]] = {}

    def issue(self, principal: Principal) -> str:
        life = ticket_life(self.ttl, principal, self._wall())
        if life <= 0:
            raise AuthError("token has expired")
        mine = self._by_subject.get(principal.sub)
        if mine is not None and len(mine) >= self.per_subject:
            self._purge(list(mine))
            if len(mine) >= self.per_subject:
                raise AuthError(
                    f"too many outstanding tickets for this user (limit {self.per_subject}); "
                    "use them or let them expire, then retry",
                    CloseCode.TOO_MANY,
                )
        if len(self._tickets) >= self.limit:
            self._purge(list(self._tickets))
            if len(self._tickets) >= self.limit:
                raise AuthError("too many outstanding tickets; try again shortly", CloseCode.TOO_MANY)
        ticket = TICKET_PREFIX + secrets.token_urlsafe(24)
        self._tickets[ticket] = (principal, self._clock() + life)
        self._by_subject.setdefault(principal.sub, set()).add(ticket)
        return ticket

    def redeem(self, ticket: str) -> Principal:
        """The ticket's principal; the ticket is gone afterwards, whatever happens."""
        entry = self._tickets.get(ticket)
        if entry is None:
            raise AuthError("ticket is unknown, already used or expired")
        self._drop(ticket, entry[0].sub)
        principal, expires = entry
        if expires <= self._clock() or principal.expired(self._wall()):
            raise AuthError("ticket is unknown, already used or expired")
        return principal

    def outstanding(self, sub: str) -> int:
        return len(self._by_subject.get(sub, ()))

    def _drop(self, ticket: str, sub: str) -> None:
        del self._tickets[ticket]
        mine = self._by_subject[sub]
        mine.discard(ticket)
        if not mine:
            del self._by_subject[sub]

    def _purge(self, candidates: list[str]) -> None:
        """Forget the expired ones among ``candidates`` (only when a limit is reached)."""
        now = self._clock()
        for ticket in candidates:
            principal, expires = self._tickets[ticket]
            if expires <= now:
                self._drop(ticket, principal.sub)


class ClusterUnavailable(AuthError):
    """The cluster's Redis cannot be reached: what needs it fails, try again later
    (HTTP 503, WebSocket close 1013)."""

    code = ErrorCode.UNKNOWN_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message, CloseCode.TRY_AGAIN_LATER)


_UNUSABLE = "ticket is unknown, already used or expired"
# What issue() makes: the prefix and token_urlsafe(24), 32 characters of base64url.
_TICKET_SHAPE = re.compile(re.escape(TICKET_PREFIX) + r"[A-Za-z0-9_-]{32}")

# KEYS: the ticket, the subject's set. ARGV: ticket, principal, life in ms, the cap.
# Atomic, so the per-subject cap holds whichever nodes issue at once. Redis's clock
# (TIME) scores the set, so nodes with skewed clocks agree on what has expired.
_ISSUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
local life = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', life)
redis.call('ZADD', KEYS[2], now + life, ARGV[1])
if redis.call('PTTL', KEYS[2]) < life then redis.call('PEXPIRE', KEYS[2], life) end
return 1
"""


def _principal_json(principal: Principal) -> bytes:
    return orjson.dumps(
        {
            "sub": principal.sub,
            "permissions": principal.permission_names(),
            "vms": list(principal.vms) if principal.vms is not None else None,
            "exp": principal.expires_at,
            "jti": principal.jti,
            **({"via": principal.via} if principal.via is not None else {}),
        }
    )


def _principal_from(raw: bytes) -> Principal:
    data = orjson.loads(raw)
    vms = data["vms"]
    return Principal(
        sub=data["sub"],
        permissions=permission_set(Permission(p) for p in data["permissions"]),
        vms=tuple(vms) if vms is not None else None,
        expires_at=float(data["exp"]),
        jti=data.get("jti"),
        via=via if isinstance(via := data.get("via"), str) else None,
    )


class RedisTicketStore:
    """Tickets in Redis (``vmws:ticket:T``, with the subject's cap in ``vmws:tickets:SUB``)."""

    def __init__(
        self,
        redis: Any,
        ttl: float = 30.0,
        *,
        per_subject: int = PER_SUBJECT_LIMIT,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.per_subject = per_subject
        self._wall = wall
        self._issue = redis.register_script(_ISSUE)

    async def issue(self, principal: Principal) -> str:
        life = ticket_life(self.ttl, principal, self._wall())
        if life <= 0:
            raise AuthError("token has expired")
        ticket = TICKET_PREFIX + secrets.token_urlsafe(24)
        keys = [f"vmws:ticket:{ticket}", f"vmws:tickets:{principal.sub}"]
        args = [ticket, _principal_json(principal), max(1, int(life * 1000)), self.per_subject]
        if not await _cluster_call(self._issue(keys=keys, args=args), "tickets cannot be issued"):
            raise AuthError(
                f"too many outstanding tickets for this user (limit {self.per_subject}); "
                "use them or let them expire, then retry",
                CloseCode.TOO_MANY,
            )
        return ticket

    async def redeem(self, ticket: str) -> Principal:
        """The ticket's principal; the ticket is gone afterwards, on every node."""
        if not _TICKET_SHAPE.fullmatch(ticket):  # not one this cluster issued: no Redis key built from it
            raise AuthError(_UNUSABLE)
        raw = await _cluster_call(self.redis.getdel(f"vmws:ticket:{ticket}"), "tickets cannot be checked")
        if raw is None:
            raise AuthError(_UNUSABLE)
        principal = _principal_from(raw)
        await _cluster_call(self.redis.zrem(f"vmws:tickets:{principal.sub}", ticket), "tickets cannot be checked")
        if principal.expired(self._wall()):
            raise AuthError(_UNUSABLE)
        return principal

    async def outstanding(self, sub: str) -> int:
        now_ms = int(self._wall() * 1000)
        return int(await self.redis.zcount(f"vmws:tickets:{sub}", now_ms, "+inf"))


async def _cluster_call(call: Any, what: str) -> Any:
    from redis.exceptions import ConnectionError, TimeoutError

    try:
        return await call
    except (ConnectionError, TimeoutError, OSError) as exc:
        log.warning("redis unreachable: %s: %s", what, exc)
        raise ClusterUnavailable(f"the cluster's Redis is unreachable: {what} right now; retry shortly") from None


class Authenticator:
    """A credential from a request (token or ticket) → the principal it stands for,
    unless a revocation in force matches it (``vmws/revocations.py``)."""

    revocations: Revocations

    def __init__(self, verifier: TokenVerifier, tickets: TicketStore) -> None:
        self.verifier = verifier
        self.tickets = tickets
        self.revocations = Revocations()

    def verify_token(self, token: str | None) -> Principal:
        """A token (never a ticket) → its principal, revocations checked."""
        return self.revocations.check(self.verifier.verify(token))

    async def authenticate(self, credential: str | None) -> Principal:
        """The principal of a token, or of a ticket (redeemed: it works once); raises
        ``AuthError`` (``ClusterUnavailable`` when a cluster's Redis cannot be asked)."""
        if credential and credential.startswith(TICKET_PREFIX):
            return self.revocations.check(await self.redeem(credential))
        return self.verify_token(credential)

    async def redeem(self, ticket: str) -> Principal:
        return self.tickets.redeem(ticket)


class ClusterAuthenticator(Authenticator):
    """Tickets from Redis: redeemed once, cluster-wide (whichever node is asked)."""

    def __init__(self, verifier: TokenVerifier, tickets: RedisTicketStore) -> None:
        self.verifier = verifier
        self.cluster_tickets = tickets
        self.revocations = Revocations()

    async def redeem(self, ticket: str) -> Principal:
        return await self.cluster_tickets.redeem(ticket)
