"""Every connection's token expiry on one event-loop timer.

A ``call_later`` per connection costs a ``TimerHandle`` and, on uvloop, a libuv timer
behind it: 544 bytes per connection (``tracemalloc``, 1,000 console viewers;
``docs/performance.md``), for a timer that almost never fires. Here a connection costs
a heap entry and a dict entry, and one timer is armed for the soonest expiry.

``add`` returns a key for ``cancel``. A cancelled entry's callback (which holds its
connection) is dropped at once; its heap entry, two numbers, is dropped when it comes
due or when cancelled entries outnumber live ones (the heap is then rebuilt).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

__all__ = ["Expiries"]

log = logging.getLogger("vmws.expiries")
# Due entries are taken this early: a loop timer may wake a hair before its time.
_EARLY = 0.001


class Expiries:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []  # (loop time due, key)
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._keys = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        """How many expiries are waiting (cancelled ones not counted)."""
        return len(self._callbacks)

    def add(self, delay: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` in ``delay`` seconds (as ``loop.call_later`` would); a key for ``cancel``."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        due = loop.time() + max(0.0, delay)
        self._callbacks[key] = callback
        heapq.heappush(self._heap, (due, key))
        if due < self._timer_at:
            self._arm(loop, due)
        return key

    def cancel(self, key: int) -> None:
        """Forget ``key``'s expiry (safe to call twice, or after it fired)."""
        if self._callbacks.pop(key, None) is None:
            return
        if len(self._heap) > 2 * len(self._callbacks) + 64:
            live = self._callbacks
            self._heap = [entry for entry in self._heap if entry[1] in live]
            heapq.heapify(self._heap)

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        loop = asyncio.get_running_loop()
        heap = self._heap
        now = loop.time() + _EARLY
        due: list[Callable[[], None]] = []
        while heap and heap[0][0] <= now:
            callback = self._callbacks.pop(heapq.heappop(heap)[1], None)
            if callback is not None:
                due.append(callback)
        while heap and heap[0][1] not in self._callbacks:
            heapq.heappop(heap)  # cancelled: no timer for them
        if heap:
            self._arm(loop, heap[0][0])
        for callback in due:  # after re-arming: a callback may add or cancel others
            try:
                callback()
            except Exception:  # as the loop does for a call_later: the others still run
                log.exception("token expiry callback failed")
