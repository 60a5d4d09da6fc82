"""The simulation's event log: what happened to which VM, when, in clock time since start.

Status changes, commands and their outcomes, timeline events and faults are recorded
as ``Entry`` values; ``line()`` gives the text form that ``python -m simulator run``
prints and that the determinism test compares byte for byte. The history kept is
bounded (a long-running server must not grow); sinks see every entry as it happens.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from simulator.listeners import add_listener

__all__ = ["Category", "Entry", "EventLog", "format_elapsed"]


class Category(str, enum.Enum):
    STATUS = "status"
    COMMAND = "command"
    TIMELINE = "timeline"
    FAULT = "fault"


def format_elapsed(seconds: float) -> str:
    """``00:01:30.000``; days are prefixed past 24 h (``2d 03:00:00.000``)."""
    millis = round(seconds * 1000)
    days, millis = divmod(millis, 86_400_000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
    return f"{days}d {clock}" if days else clock


@dataclass(frozen=True, slots=True)
class Entry:
    elapsed: float
    vm: str
    category: Category
    text: str

    def line(self) -> str:
        return f"{format_elapsed(self.elapsed)}  {self.vm:<16} {self.category.value:<8} {self.text}"


Sink = Callable[[Entry], None]


class EventLog:
    def __init__(self, now: Callable[[], float], limit: int = 10_000) -> None:
        self._now = now
        self._start = now()
        self.entries: deque[Entry] = deque(maxlen=limit)
        self._sinks: list[Sink] = []

    def record(self, vm: str, category: Category, text: str) -> None:
        entry = Entry(self._now() - self._start, vm, category, text)
        self.entries.append(entry)
        for sink in list(self._sinks):
            sink(entry)

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        return add_listener(self._sinks, sink)

    def text(self) -> str:
        return "".join(entry.line() + "\n" for entry in self.entries)
