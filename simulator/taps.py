"""Console fan-out: the readers of one VM's serial console (sans-I/O).

Whatever the guest prints goes to every reader (``ConsoleTap``), each with its own
buffer; what any reader types goes to the one console. Flood output (``yes``, ``seq``)
is not pushed but pulled: a ``read`` tops its reader up, at most ``CHUNK`` at a time,
and only while every reader has less than ``TAP_LIMIT`` unread, so the slowest reader
paces the flood and no buffer grows without bound. The async adapter
(``vmws.backends.simulator``) awaits a tap's ``on_ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["ConsoleSource", "ConsoleReaders", "ConsoleTap", "CHUNK", "TAP_LIMIT"]

CHUNK = 64 * 1024  # the most flood output one read produces
TAP_LIMIT = 4 * CHUNK  # a flood waits while any reader has this much unread


class ConsoleSource(Protocol):
    """The machine whose console is read: where floods are pulled from and keys go."""

    @property
    def pumping(self) -> bool:
        """A flood is running (whether or not it may be pulled right now)."""
        ...

    def can_pump(self) -> bool:
        """A flood may produce output now (the guest runs and is not in a transition)."""
        ...

    def pump(self, max_bytes: int) -> None: ...

    def console_input(self, data: bytes) -> None: ...


class ConsoleTap:
    """One reader of a VM's serial console (the backend adapter awaits it).

    ``read`` returns what is buffered (topping it up from a running flood, at most
    ``CHUNK`` at a time), ``b""`` when there is nothing yet; ``eof`` tells the two
    apart. ``on_ready`` is called whenever a ``read`` may have something new.
    """

    __slots__ = ("_readers", "_on_ready", "_buf", "eof")

    def __init__(self, readers: ConsoleReaders, on_ready: Callable[[], None]) -> None:
        self._readers = readers
        self._on_ready = on_ready
        self._buf = bytearray()
        self.eof = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def read(self) -> bytes:
        readers = self._readers
        if not self.eof and len(self._buf) < CHUNK:
            readers.pull(CHUNK - len(self._buf))
        data = bytes(self._buf)
        self._buf.clear()
        if data and readers.source.pumping:
            readers.wake()  # a flood held back by this reader's backlog may go on
        return data

    def write(self, data: bytes) -> None:
        """Type into the console; input after eof is dropped, as on a closed line."""
        if not self.eof and data:
            self._readers.source.console_input(data)

    def close(self) -> None:
        if not self.eof:
            self._readers.detach(self)
            self._end()
        self._buf.clear()

    # Called by the fan-out

    def _push(self, data: bytes) -> None:
        self._buf += data
        self._on_ready()

    def _end(self) -> None:
        self.eof = True
        self._on_ready()

    def _wake(self) -> None:
        self._on_ready()


class ConsoleReaders:
    """Every reader of one console. Made when the first reader attaches, so an idle VM
    of a large fleet carries none."""

    __slots__ = ("source", "_taps")

    def __init__(self, source: ConsoleSource) -> None:
        self.source = source
        self._taps: tuple[ConsoleTap, ...] = ()

    @property
    def taps(self) -> tuple[ConsoleTap, ...]:
        return self._taps

    def attach(self, on_ready: Callable[[], None], screen: bytes = b"") -> ConsoleTap:
        """A new reader, starting with ``screen`` (what a terminal attached now would show)."""
        tap = ConsoleTap(self, on_ready)
        if screen:
            tap._push(screen)
        self._taps = (*self._taps, tap)
        return tap

    def detach(self, tap: ConsoleTap) -> None:
        if tap in self._taps:
            self._taps = tuple(t for t in self._taps if t is not tap)
            self.wake()  # its backlog no longer holds a flood back

    def pull(self, max_bytes: int) -> None:
        """Top readers up from a running flood, unless one of them is too far behind."""
        if self.source.can_pump() and all(t.buffered < TAP_LIMIT for t in self._taps):
            self.source.pump(max_bytes)

    def push(self, data: bytes) -> None:
        for tap in self._taps:
            tap._push(data)

    def wake(self) -> None:
        for tap in self._taps:
            tap._wake()

    def end(self) -> None:
        """The console is gone: every reader reaches eof and is forgotten."""
        taps, self._taps = self._taps, ()
        for tap in taps:
            tap._end()
