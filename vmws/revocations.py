"""Revoked subjects and token ids, until each entry expires.

An operator revokes a ``sub`` (every token of that user) or a ``jti`` (one token) until
a time, typically the token's own expiry. While an entry holds, the ``Authenticator``
refuses every credential it matches (close 4001 / HTTP 401, the reason says revoked),
tickets bought earlier included, and the sessions it matches are closed at once.

Each node keeps them in memory; in a cluster ``vmws/cluster/revocations.py`` shares
them through Redis (``docs/operations.md``).
The list is bounded (``MAX_ENTRIES``) and forgets expired entries as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vmws.auth import Principal
from vmws.errors import AuthError

__all__ = ["Revocations", "Revocation", "RevokedError", "MAX_ENTRIES", "MAX_LIFETIME"]

MAX_ENTRIES = 10_000
# No entry lasts longer than this: a revocation is for tokens, and tokens expire.
MAX_LIFETIME = 366 * 86400.0


class RevokedError(AuthError):
    """The credential's subject or token id is revoked (close 4001, HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Revocation:
    sub: str | None
    jti: str | None
    expires_at: float  # epoch seconds

    def matches(self, principal: Principal) -> bool:
        if self.sub is not None and principal.sub == self.sub:
            return True
        return self.jti is not None and principal.jti == self.jti


class Revocations:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._by_sub: dict[str, float] = {}
        self._by_jti: dict[str, float] = {}
        # In a cluster: stores and publishes a new entry (``vmws/cluster/revocations.py``).
        self.share: Callable[[Revocation, str], Awaitable[None]] | None = None

    def add(self, *, sub: str | None, jti: str | None, expires_at: float) -> Revocation:
        """Revoke ``sub`` or ``jti`` (exactly one) until ``expires_at``; ValueError if not allowed."""
        if (sub is None) == (jti is None):
            raise ValueError("give exactly one of 'sub' and 'jti'")
        key = sub if sub is not None else jti
        assert key is not None
        if not key or len(key) > 1024:
            raise ValueError("'sub' / 'jti' must be a non-empty string of at most 1024 characters")
        now = self._now()
        if expires_at <= now:
            raise ValueError("the expiry is in the past")
        if expires_at > now + MAX_LIFETIME:
            raise ValueError(f"the expiry is more than {MAX_LIFETIME / 86400:g} days away")
        table = self._by_sub if sub is not None else self._by_jti
        self._forget_expired(now)
        if key not in table and len(self._by_sub) + len(self._by_jti) >= MAX_ENTRIES:
            raise ValueError(f"too many revocations in force (limit {MAX_ENTRIES})")
        # Revoking again keeps the later expiry: a shorter second entry must not lift the first.
        table[key] = max(expires_at, table.get(key, 0.0))
        return Revocation(sub, jti, table[key])

    def revoked(self, principal: Principal) -> bool:
        now = self._now()
        until = self._by_sub.get(principal.sub)
        if until is not None and until > now:
            return True
        if principal.jti is not None:
            until = self._by_jti.get(principal.jti)
            if until is not None and until > now:
                return True
        return False

    def check(self, principal: Principal) -> Principal:
        """``principal``, or ``RevokedError`` if an entry in force matches it."""
        if self.revoked(principal):
            raise RevokedError("token has been revoked")
        return principal

    def active(self) -> list[Revocation]:
        now = self._now()
        self._forget_expired(now)
        return [Revocation(s, None, t) for s, t in self._by_sub.items()] + [
            Revocation(None, j, t) for j, t in self._by_jti.items()
        ]

    def _forget_expired(self, now: float) -> None:
        for table in (self._by_sub, self._by_jti):
            for key in [k for k, t in table.items() if t <= now]:
                del table[key]
