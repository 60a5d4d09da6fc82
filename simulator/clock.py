"""Clocks handed to the simulator: its only source of time, so runs are deterministic.

The simulator never reads the wall clock: it asks a ``Clock`` for the time and for
timers. ``vmws serve`` hands it a ``LoopClock`` (the asyncio loop's clock, optionally
sped up); tests hand it a ``VirtualClock`` that only moves when told to, so a
ten-minute timeline runs in milliseconds. Nothing here imports asyncio: the loop is
duck-typed (``time()`` and ``call_later()``).
"""

from __future__ import annotations

import heapq
import itertools
import time as _time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "Timer", "LoopClock", "VirtualClock", "VIRTUAL_EPOCH"]

# 2026-01-01T00:00:00Z: where virtual time starts unless a test says otherwise.
VIRTUAL_EPOCH = 1_767_225_600.0


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the Unix epoch, in this clock's notion of time."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once, ``delay`` seconds of this clock's time from now."""
        ...


class _Loop(Protocol):
    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class LoopClock:
    """An event loop's monotonic clock mapped onto wall time, ``speed`` times faster.

    The wall time is read once at construction; after that only the loop's monotonic
    clock is used, so time never jumps backwards when the host clock is adjusted.
    """

    def __init__(self, loop: _Loop, speed: float = 1.0, epoch: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._loop = loop
        self.speed = speed
        self._epoch = _time.time() if epoch is None else epoch
        self._start = loop.time()

    def time(self) -> float:
        return self._epoch + (self._loop.time() - self._start) * self.speed

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        handle: Timer = self._loop.call_later(max(0.0, delay) / self.speed, callback)
        return handle

    @property
    def reactor(self) -> Any:
        """The loop itself, on which the simulator serves screens (``simulator.screen.link``)."""
        return self._loop


class _VirtualTimer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Time that moves only through ``advance``; timers fire in (time, creation) order."""

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _VirtualTimer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in order.

        A callback that schedules another timer inside the window sees it run too.
        """
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
        self._now = target

    def next_deadline(self) -> float | None:
        """When the next live timer falls due, or None when nothing is scheduled."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
