"""Principals with the same permissions share one frozenset: each connection keeps its
principal, and a frozenset of its own cost 216 B per connection."""

from __future__ import annotations

import time

from vmws.auth import Permission, TokenVerifier, mint_token, permission_set

SECRET = "interning-tests-" + "s" * 32


def test_tokens_with_the_same_permissions_share_one_set_and_others_do_not() -> None:
    verifier = TokenVerifier(secret=SECRET)
    now = time.time()
    a = verifier.verify(mint_token(SECRET, sub="a", permissions=["read", "console"], now=now))
    b = verifier.verify(mint_token(SECRET, sub="b", permissions=["console", "read", "read"], now=now))
    c = verifier.verify(mint_token(SECRET, sub="c", permissions=["read"], now=now))
    assert a.permissions == b.permissions == {Permission.READ, Permission.CONSOLE}
    assert a.permissions is b.permissions
    assert c.permissions == {Permission.READ} and c.permissions is not a.permissions
    assert permission_set([Permission.READ]) is c.permissions
