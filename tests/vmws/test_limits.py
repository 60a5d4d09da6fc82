"""The token bucket behind the per-connection message rates (vmws/limits.py)."""

from __future__ import annotations

import pytest

from vmws.limits import TokenBucket


def test_allow_drops_what_is_over_the_rate_and_refills_with_time() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.05) is False  # half a token back
    assert bucket.allow(0.1) is True
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # never past the burst


def test_delay_takes_every_event_and_says_how_long_each_must_wait() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.delay(0.0) == 0.0
    assert bucket.delay(0.0) == 0.0
    assert bucket.delay(0.0) == pytest.approx(0.1)  # owes one token: a tenth of a second
    # The caller waited its turn: the next event, at once, waits one more interval.
    assert bucket.delay(0.1) == pytest.approx(0.1)
    assert bucket.delay(0.35) == 0.0  # caught up
    assert bucket.delay(10.0) == 0.0
