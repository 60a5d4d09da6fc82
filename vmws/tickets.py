"""Single-use tickets, so long-lived tokens stay out of URLs.

A client holding a token calls ``POST /api/tickets`` with ``Authorization: Bearer``
and gets a ticket valid for a few seconds, usable once as ``?token=`` on a WebSocket
URL (where browsers cannot set headers). The ticket carries the token's principal.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from vmws.auth import Principal, TokenVerifier
from vmws.errors import AuthError

__all__ = ["TicketStore", "Authenticator", "TICKET_PREFIX"]

TICKET_PREFIX = "vmt_"


class TicketStore:
    def __init__(self, ttl: float = 30.0, limit: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._tickets: dict[str, tuple[Principal, float]] = {}

    def issue(self, principal: Principal) -> str:
        self._purge()
        if len(self._tickets) >= self.limit:
            raise AuthError("too many outstanding tickets; try again shortly", 4029)
        ticket = TICKET_PREFIX + secrets.token_urlsafe(24)
        self._tickets[ticket] = (principal, self._clock() + self.ttl)
        return ticket

    def redeem(self, ticket: str) -> Principal:
        """The ticket's principal; the ticket is gone afterwards, whatever happens."""
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] < self._clock():
            raise AuthError("ticket is unknown, already used or expired")
        return entry[0]

    def _purge(self) -> None:
        now = self._clock()
        for ticket in [t for t, (_, expires) in self._tickets.items() if expires < now]:
            del self._tickets[ticket]


class Authenticator:
    """A credential from a request (token or ticket) → the principal it stands for."""

    def __init__(self, verifier: TokenVerifier, tickets: TicketStore) -> None:
        self.verifier = verifier
        self.tickets = tickets

    def authenticate(self, credential: str | None) -> Principal:
        if credential and credential.startswith(TICKET_PREFIX):
            return self.tickets.redeem(credential)
        return self.verifier.verify(credential)
