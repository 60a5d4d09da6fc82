"""vmws/expiries.py: every connection's token expiry on one loop timer."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from vmws.expiries import Expiries

pytestmark = pytest.mark.asyncio


async def test_each_expiry_fires_once_in_order_of_its_time_on_one_timer() -> None:
    expiries = Expiries()
    fired: list[str] = []
    expiries.add(0.06, lambda: fired.append("late"))
    expiries.add(0.02, lambda: fired.append("soon"))  # earlier than the armed timer: re-armed
    expiries.add(-5, lambda: fired.append("past"))  # already due: at the next turn, as call_later(0)
    await asyncio.sleep(0.3)
    assert fired == ["past", "soon", "late"]
    assert len(expiries) == 0


async def test_a_cancelled_expiry_never_fires_and_lets_its_connection_go_at_once() -> None:
    class Connection:
        fired = False

        def expired(self) -> None:
            self.fired = True

    expiries = Expiries()
    conn = Connection()
    key = expiries.add(0.02, conn.expired)
    gone = weakref.ref(conn)
    expiries.cancel(key)
    expiries.cancel(key)  # twice is harmless
    del conn
    gc.collect()
    assert gone() is None  # not held until its time
    other: list[int] = []
    expiries.add(0.03, lambda: other.append(1))
    await asyncio.sleep(0.2)
    assert other == [1] and len(expiries) == 0


async def test_cancelled_entries_do_not_pile_up() -> None:
    expiries = Expiries()
    keep = expiries.add(3600, lambda: None)
    for _ in range(10_000):  # connections that come and go within their token's hour
        expiries.cancel(expiries.add(3600, lambda: None))
    assert len(expiries) == 1
    assert len(expiries._heap) <= 2 * len(expiries) + 65  # rebuilt as cancellations pass live ones
    expiries.cancel(keep)


async def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    expiries = Expiries()
    fired: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    expiries.add(0.01, broken)
    expiries.add(0.01, lambda: fired.append(1))
    await asyncio.sleep(0.2)
    assert fired == [1]
    assert "token expiry callback failed" in caplog.text
