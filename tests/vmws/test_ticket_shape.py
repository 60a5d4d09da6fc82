"""A cluster's ticket store refuses what is not shaped like a ticket it issued before
building a Redis key from it (unit test: a stand-in for Redis that must not be asked)."""

from __future__ import annotations

from typing import Any

import pytest

from vmws.errors import AuthError
from vmws.tickets import TICKET_PREFIX, RedisTicketStore

pytestmark = pytest.mark.asyncio


class _UntouchableRedis:
    def register_script(self, script: str) -> object:  # at construction, no round trip
        return object()

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis was asked ({name}) for a ticket that cannot be one")


@pytest.mark.parametrize(
    "ticket",
    [
        TICKET_PREFIX + "x" * 100_000,  # long: would be a 100 kB key
        TICKET_PREFIX + "a" * 31,
        TICKET_PREFIX + "a" * 31 + "*",  # a glob character
        TICKET_PREFIX + "a" * 31 + "\n",
        TICKET_PREFIX + "é" * 32,
        TICKET_PREFIX,
    ],
)
async def test_a_ticket_of_the_wrong_shape_is_refused_without_asking_redis(ticket: str) -> None:
    store = RedisTicketStore(_UntouchableRedis(), 30.0)
    with pytest.raises(AuthError, match="ticket is unknown, already used or expired"):
        await store.redeem(ticket)
