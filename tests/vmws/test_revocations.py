"""Revocations with a hand-driven clock: expiry, bounds, the later expiry winning."""

from __future__ import annotations

import pytest

from vmws.auth import Permission, Principal
from vmws.revocations import MAX_ENTRIES, Revocations, RevokedError


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def who(sub: str, jti: str | None = None) -> Principal:
    return Principal(sub, frozenset({Permission.READ}), None, 2e9, jti)


def test_an_entry_refuses_until_it_expires_then_is_forgotten() -> None:
    clock = Clock()
    revocations = Revocations(clock)
    revocations.add(sub="mallory", jti=None, expires_at=clock.t + 60)
    revocations.add(sub=None, jti="t-1", expires_at=clock.t + 30)
    with pytest.raises(RevokedError) as refused:
        revocations.check(who("mallory"))
    assert refused.value.close_code == 4001
    with pytest.raises(RevokedError):
        revocations.check(who("bob", "t-1"))
    assert revocations.check(who("bob", "t-2")).sub == "bob"
    clock.t += 30
    assert not revocations.revoked(who("bob", "t-1"))
    assert revocations.revoked(who("mallory"))
    clock.t += 30
    assert not revocations.revoked(who("mallory")) and revocations.active() == []


def test_revoking_again_never_shortens_an_entry() -> None:
    clock = Clock()
    revocations = Revocations(clock)
    revocations.add(sub="m", jti=None, expires_at=clock.t + 600)
    assert revocations.add(sub="m", jti=None, expires_at=clock.t + 10).expires_at == clock.t + 600


def test_the_list_is_bounded_but_expired_entries_make_room() -> None:
    clock = Clock()
    revocations = Revocations(clock)
    for n in range(MAX_ENTRIES):
        revocations.add(sub=None, jti=f"j{n}", expires_at=clock.t + 1)
    with pytest.raises(ValueError, match="too many revocations"):
        revocations.add(sub="one-more", jti=None, expires_at=clock.t + 1)
    clock.t += 2
    revocations.add(sub="one-more", jti=None, expires_at=clock.t + 1)
    assert len(revocations.active()) == 1
