"""Single-use tickets, so long-lived tokens stay out of URLs.

A client holding a token calls ``POST /api/tickets`` with ``Authorization: Bearer``
and gets a ticket valid for a few seconds, usable once as ``?token=`` on a WebSocket
URL (where browsers cannot set headers). The ticket carries the token's principal, and
lives ``min(TTL, the token's exp + leeway)``: it never outlives the token it came from.

Outstanding tickets are capped twice: per subject (``PER_SUBJECT_LIMIT``), so one user
cannot take the pool from everyone else, and in total (``limit``), so memory stays
bounded whatever the number of subjects.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from vmws.auth import Principal, TokenVerifier
from vmws.codes import CloseCode
from vmws.errors import AuthError

__all__ = ["TicketStore", "Authenticator", "TICKET_PREFIX", "PER_SUBJECT_LIMIT"]

TICKET_PREFIX = "vmt_"
PER_SUBJECT_LIMIT = 100


class TicketStore:
    def __init__(self, ttl: float = 30.0, limit: int = 10_000, *, per_subject: int = PER_SUBJECT_LIMIT,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.limit = limit
        self.per_subject = per_subject
        self._clock = clock  # ticket TTLs: immune to wall-clock steps
        self._wall = wall  # token expiry: an epoch time from the token
        self._tickets: dict[str, tuple[Principal, float]] = {}
        self._by_subject: dict[str, set[str]] = {}

    def issue(self, principal: Principal) -> str:
        life = min(self.ttl, principal.expires_at - self._wall())
        if life <= 0:
            raise AuthError("token has expired")
        mine = self._by_subject.get(principal.sub)
        if mine is not None and len(mine) >= self.per_subject:
            self._purge(list(mine))
            if len(mine) >= self.per_subject:
                raise AuthError(
                    f"too many outstanding tickets for this user (limit {self.per_subject}); "
                    "use them or let them expire, then retry", CloseCode.TOO_MANY,
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


class Authenticator:
    """A credential from a request (token or ticket) → the principal it stands for."""

    def __init__(self, verifier: TokenVerifier, tickets: TicketStore) -> None:
        self.verifier = verifier
        self.tickets = tickets

    def authenticate(self, credential: str | None) -> Principal:
        if credential and credential.startswith(TICKET_PREFIX):
            return self.tickets.redeem(credential)
        return self.verifier.verify(credential)
