"""Per-connection message rate and per-key connection counts."""

from __future__ import annotations

from collections import Counter

__all__ = ["TokenBucket", "ConnectionCounter"]


class TokenBucket:
    """Allows ``rate`` events per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def allow(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def delay(self, now: float) -> float:
        """Takes a token even when none is left: the seconds the event must wait for it
        (0 when one was there). For throttling, not dropping: the caller waits that long
        before its next call, so the debt is at most one token."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0.0 else -self._tokens / self.rate

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


class ConnectionCounter:
    """How many connections each key (a user, a VM's console) holds, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str] = Counter()

    def acquire(self, key: str) -> bool:
        if self._counts[key] >= self.limit:
            return False
        self._counts[key] += 1
        return True

    def release(self, key: str) -> None:
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]

    def count(self, key: str) -> int:
        return self._counts[key]
