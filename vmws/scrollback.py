"""A VM's recent console output, addressed by byte offset from the stream's start.

Offsets keep counting across console sessions of the same VM, so a client can say
"everything since offset N" after a reconnect and get no gap and no duplicate for as
long as those bytes are still held (the newest ``limit`` bytes).

Each append may carry the wall-clock time the bytes arrived, kept per chunk so the held
output can be replayed as a recording with its real timing (``vmws/recording.py``).
Chunks that arrive within ``COALESCE_SECONDS`` of the previous mark share its mark, and
at most ``MAX_MARKS`` marks are kept (the oldest merge into their neighbour), so a
guest writing one byte per read cannot make the marks outgrow the bytes.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Scrollback", "COALESCE_SECONDS", "MAX_MARKS"]

COALESCE_SECONDS = 0.005
MAX_MARKS = 4096


class Scrollback:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._start = 0  # offset of _buf[0]
        # (offset, time): the bytes from offset up to the next mark arrived at time.
        self._marks: deque[tuple[int, float]] = deque()

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
        self._marks.clear()
        self._start = offset

    def append(self, data: bytes, at: float | None = None) -> None:
        """Hold ``data`` (the newest bytes); ``at`` is when it arrived, if known."""
        if at is not None and data and (not self._marks or at - self._marks[-1][1] >= COALESCE_SECONDS):
            self._marks.append((self.end, at))
            if len(self._marks) > MAX_MARKS:
                del self._marks[1]  # its bytes now count as arriving with the oldest mark's
        self._buf += data
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]
            self._start += excess
            # Marks wholly before the start go; the one the held bytes begin in stays.
            while len(self._marks) > 1 and self._marks[1][0] <= self._start:
                self._marks.popleft()

    def timed_chunks(self) -> list[tuple[float, bytes]]:
        """The held bytes as ``(arrival time, bytes)`` in order (bytes appended without
        a time count as arriving with the mark before them, or the first mark)."""
        if not self._marks:
            return []
        marks = list(self._marks)
        marks[0] = (self._start, marks[0][1])
        chunks: list[tuple[float, bytes]] = []
        for i, (offset, at) in enumerate(marks):
            until = marks[i + 1][0] if i + 1 < len(marks) else self.end
            chunks.append((at, bytes(self._buf[offset - self._start : until - self._start])))
        return chunks

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
