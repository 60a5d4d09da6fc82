"""Output produced on demand: the commands that print volume (``yes``, ``seq``, ``cat``
of a large log, ``dmesg``).

A ``Flood`` yields about ``max_bytes`` at a time, only when the console's reader asks
— like a serial line that blocks the writer — so a flood never grows memory however
slow the reader. Output is already in the tty's ``\\r\\n`` form.
"""

from __future__ import annotations

import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from simulator.metrics import noise

__all__ = [
    "Flood",
    "YesFlood",
    "SeqFlood",
    "TextFlood",
    "LinesFlood",
    "ChainFlood",
    "seq_size",
    "syslog_line",
    "dmesg_line",
    "SYSLOG_LINES",
]

SYSLOG_LINES = 100_000  # about 9 MB: `cat /var/log/syslog` is a throughput test on its own


class Flood(ABC):
    """Output produced on demand, about ``max_bytes`` at a time, until ``finished``."""

    finished: bool = False

    @abstractmethod
    def produce(self, max_bytes: int) -> bytes: ...

    def size_hint(self) -> int | None:
        """Bytes still to come as a file would hold them (``\\n`` endings); None: endless."""
        return None


class YesFlood(Flood):
    """``yes [WORD...]``: the same line forever, until Ctrl-C."""

    def __init__(self, text: str) -> None:
        self._line = (text + "\r\n").encode()

    def produce(self, max_bytes: int) -> bytes:
        return self._line * max(1, max_bytes // len(self._line))


class SeqFlood(Flood):
    """``seq [FIRST] LAST``: one integer per line, made a thousand lines at a time.

    Line by line this was 78 % of a server flooding ``seq`` (1.6 ms per 64 KiB). Each
    call ends on the line where the old per-line loop ended (the first line that takes
    the output to ``max_bytes``), so chunks are byte-for-byte what they were.
    """

    def __init__(self, first: int, last: int) -> None:
        self._next = first
        self._last = last
        self.finished = first > last
        self._thousands = _Thousands()

    def size_hint(self) -> int | None:
        return seq_size(self._next, self._last)

    @property
    def span(self) -> tuple[int, int]:
        return self._next, self._last

    def produce(self, max_bytes: int) -> bytes:
        first = self._next
        end = _seq_end(first, self._last, max_bytes)
        self._next = end
        self.finished = end > self._last
        return self._lines(first, end)

    def _lines(self, lo: int, hi: int) -> bytes:
        """The lines of ``lo`` up to (not including) ``hi``."""
        out = bytearray()
        if lo < 1000:
            # signs and short numbers: few lines, made one by one
            top = min(hi, 1000)
            if lo < top:
                out += ("\r\n".join(map(str, range(lo, top))) + "\r\n").encode()
            lo = top
        while lo < hi:
            k, j = divmod(lo, 1000)
            end = min(hi, (k + 1) * 1000)
            block = self._thousands.block(k)
            stride = len(block) // 1000
            out += memoryview(block)[j * stride : (end - k * 1000) * stride]
            lo = end
        return bytes(out)


# Lines "P000\r\n" … "P999\r\n" with a one-byte stand-in for the prefix P
_THOUSAND = b"".join(b"\x00%03d\r\n" % i for i in range(1000))
_DIGIT_RUNS = [bytes((ord("0") + d,)) * 1000 for d in range(10)]


class _Thousands:
    """The block of lines ``k000`` … ``k999`` (``k >= 1``) for one ``k`` at a time.

    The next block differs from the last only in the prefix digits that changed (one
    in ten steps changes two): those are rewritten in place, one strided slice per
    digit, instead of rebuilding a thousand lines.
    """

    __slots__ = ("_prefix", "_block")

    def __init__(self) -> None:
        self._prefix = b""
        self._block = bytearray()

    def block(self, k: int) -> bytearray:
        prefix = b"%d" % k
        old = self._prefix
        if len(prefix) != len(old):
            self._block = bytearray(_THOUSAND.replace(b"\x00", prefix))
        elif prefix != old:
            stride = len(prefix) + 5  # the prefix, three digits, CR LF
            block = self._block
            for q, (digit, was) in enumerate(zip(prefix, old, strict=False)):
                if digit != was:
                    block[q::stride] = _DIGIT_RUNS[digit - ord("0")]
        self._prefix = prefix
        return self._block


def _seq_end(first: int, last: int, max_bytes: int) -> int:
    """Where a chunk that starts at ``first`` ends (exclusive): after the first line
    that takes it to ``max_bytes``, or after ``last``."""
    n = first
    size = 0
    while n <= last and size < max_bytes:
        width = len(str(n)) + 2
        digits = len(str(abs(n)))
        top = min(last, 10**digits - 1 if n >= 0 else -(10 ** (digits - 1)))  # same width up to here
        take = min(-(-(max_bytes - size) // width), top - n + 1)
        n += take
        size += take * width
    return n


def seq_size(first: int, last: int) -> int:
    """Bytes ``seq FIRST LAST`` writes to a file (``\\n`` endings), without making them."""
    if first > last:
        return 0
    total = 0
    if first < 0:
        # negative numbers: the sign plus the digits of the absolute value
        neg_last = min(last, -1)
        total += (neg_last - first + 1) + seq_size(-neg_last, -first)
        first = 0
        if last < 0:
            return total
    digits = len(str(first))
    while first <= last:
        top = min(last, 10**digits - 1)
        total += (top - first + 1) * (digits + 1)
        first = top + 1
        digits += 1
    return total


class TextFlood(Flood):
    """A fixed text, handed out in pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self.finished = not data

    def size_hint(self) -> int | None:
        rest = self._data[self._pos :]
        return len(rest) - rest.count(b"\r")

    def produce(self, max_bytes: int) -> bytes:
        chunk = self._data[self._pos : self._pos + max_bytes]
        self._pos += len(chunk)
        self.finished = self._pos >= len(self._data)
        return chunk


_PROGRAMS = (
    ("systemd", 1, "Started Session {n} of User admin."),
    ("systemd", 1, "Starting Daily apt download activities..."),
    ("systemd", 1, "Finished Daily apt download activities."),
    ("CRON", 0, "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)"),
    ("kernel", -1, "[UFW BLOCK] IN=ens3 OUT= SRC=203.0.113.{n} DST=10.0.2.15 PROTO=TCP DPT=23"),
    ("sshd", 0, "Accepted publickey for admin from 10.0.2.2 port {port} ssh2"),
    ("sshd", 0, "pam_unix(sshd:session): session opened for user admin(uid=1000) by (uid=0)"),
    ("systemd-resolved", 0, "Clock change detected. Flushing caches."),
    ("snapd", 0, "autorefresh.go:551: auto-refresh: all snaps are up-to-date"),
    ("nginx", 0, '10.0.2.2 - - "GET /health HTTP/1.1" 200 2 "-" "kube-probe/1.29"'),
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def syslog_line(hostname: str, start: float, index: int) -> str:
    """Line ``index`` of the guest's generated system log (no line ending)."""
    key = zlib.crc32(hostname.encode())
    program, pid, text = _PROGRAMS[int(noise(key, index, 1) * len(_PROGRAMS))]
    stamp = time.gmtime(start + index * 0.9)
    when = f"{_MONTHS[stamp.tm_mon - 1]} {stamp.tm_mday:2d} {stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}"
    proc = program if pid < 0 else f"{program}[{pid or 400 + index % 30000}]"
    body = text.format(n=1 + index % 250, port=40000 + index % 20000)
    return f"{when} {hostname} {proc}: {body}"


def dmesg_line(hostname: str, boot_end: float, index: int) -> str:
    """Kernel message ``index`` after boot: the firewall logging the internet's knocks."""
    key = zlib.crc32(hostname.encode())
    stamp = boot_end + index * 30.0 + 29.0 * noise(key, index, 2)
    return f"[{stamp:12.6f}] [UFW BLOCK] IN=ens3 OUT= SRC=198.51.100.{1 + index % 254} DST=10.0.2.15 PROTO=TCP DPT=22"


class LinesFlood(Flood):
    """Lines ``first`` up to (not including) ``last`` of a generated text, ``line(i)`` each."""

    def __init__(self, line: Callable[[int], str], first: int, last: int) -> None:
        self._line = line
        self._next = max(0, first)
        self._last = last
        self.finished = self._next >= last

    def produce(self, max_bytes: int) -> bytes:
        parts: list[str] = []
        size = 0
        while self._next < self._last and size < max_bytes:
            line = self._line(self._next) + "\r\n"
            parts.append(line)
            size += len(line)
            self._next += 1
        self.finished = self._next >= self._last
        return "".join(parts).encode()

    def size_hint(self) -> int | None:
        return (self._last - self._next) * 80  # about a line's length; these files are never kept


class ChainFlood(Flood):
    """Several floods one after another (``cat a /var/log/syslog b``)."""

    def __init__(self, parts: Sequence[Flood]) -> None:
        self._parts = [p for p in parts if not p.finished]
        self.finished = not self._parts

    def size_hint(self) -> int | None:
        sizes = [part.size_hint() for part in self._parts]
        return None if any(size is None for size in sizes) else sum(s for s in sizes if s is not None)

    def produce(self, max_bytes: int) -> bytes:
        out = bytearray()
        while self._parts and len(out) < max_bytes:
            part = self._parts[0]
            out += part.produce(max_bytes - len(out))
            if part.finished:
                self._parts.pop(0)
        self.finished = not self._parts
        return bytes(out)
