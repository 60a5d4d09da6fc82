"""A list of callbacks and the unsubscribe function handed back for each (shared by
the simulator's status listeners and the event log's sinks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["add_listener"]

T = TypeVar("T")


def add_listener(listeners: list[T], listener: T) -> Callable[[], None]:
    """Append ``listener``; the returned function removes it (calling it twice is harmless)."""
    listeners.append(listener)

    def unsubscribe() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return unsubscribe
