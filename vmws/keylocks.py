"""One asyncio lock per key (a VM name), existing only while someone holds or awaits it.

A ``defaultdict(asyncio.Lock)`` keeps a lock for every key ever asked for: any name a
client sends would stay in memory for good. Here a key's entry goes when its last user
leaves, so what the table holds is bounded by the requests under way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["KeyedLocks"]


class KeyedLocks:
    def __init__(self) -> None:
        # key -> (lock, how many tasks hold it or wait for it)
        self._entries: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock (FIFO among waiters); cancellation while waiting is safe."""
        lock, users = self._entries.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._entries[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._entries[key]
            if users <= 1:
                del self._entries[key]
            else:
                self._entries[key] = (lock, users - 1)
