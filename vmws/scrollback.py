"""A VM's recent console output, addressed by byte offset from the stream's start.

Offsets keep counting across console sessions of the same VM, so a client can say
"everything since offset N" after a reconnect and get no gap and no duplicate for as
long as those bytes are still held (the newest ``limit`` bytes).
"""

from __future__ import annotations

__all__ = ["Scrollback"]


class Scrollback:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._start = 0  # offset of _buf[0]

    @property
    def start(self) -> int:
        """Offset of the oldest byte still held."""
        return self._start

    @property
    def end(self) -> int:
        """Offset just past the newest byte (total bytes ever appended)."""
        return self._start + len(self._buf)

    def restart_at(self, offset: int) -> None:
        """Forget what is held and continue at ``offset`` (a console relayed from another
        node takes that node's offsets)."""
        self._buf.clear()
        self._start = offset

    def append(self, data: bytes) -> None:
        self._buf += data
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]
            self._start += excess

    def since(self, offset: int, until: int | None = None) -> tuple[int, bytes]:
        """``(first_offset, bytes)`` held from ``offset`` (clamped to what is held) to ``until``.

        The first offset is moved past UTF-8 continuation bytes so the text starts on a
        character boundary.
        """
        first = min(max(offset, self._start), self.end)
        last = self.end if until is None else max(first, min(until, self.end))
        data = bytes(self._buf[first - self._start : last - self._start])
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF and first + skip > 0:
            skip += 1
        if skip and first == offset:
            skip = 0  # the caller asked for exactly this offset: give them exactly it
        return first + skip, data[skip:]
