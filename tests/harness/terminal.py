"""The terminal side of a console, for tests that read a real guest's console as text.

A real terminal (xterm.js in the browser, the user's own under ``vmws console``)
answers and never displays the cursor-position query ``ESC [ 6 n`` that busybox's
line editor sends after every prompt. Tests matching prompts with ``[$#] $`` read
through ``QueryAnsweringStream``, which swallows that query the way a terminal would.
"""

from __future__ import annotations

from vmws.backend import Backend, Capability, ConsoleStream

__all__ = ["QueryAnsweringStream", "TerminalBackend", "CURSOR_QUERY"]

CURSOR_QUERY = b"\x1b[6n"


class QueryAnsweringStream(ConsoleStream):
    def __init__(self, inner: ConsoleStream) -> None:
        self.inner = inner
        self._held = b""  # a chunk ended in what may be the start of a query

    async def read(self) -> bytes:
        while True:
            chunk = await self.inner.read()
            if not chunk:
                held, self._held = self._held, b""
                return held
            data = (self._held + chunk).replace(CURSOR_QUERY, b"")
            self._held = b""
            for size in range(len(CURSOR_QUERY) - 1, 0, -1):
                if data.endswith(CURSOR_QUERY[:size]):
                    data, self._held = data[:-size], data[-size:]
                    break
            if data:
                return data

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def close(self) -> None:
        await self.inner.close()


class TerminalBackend:
    """A view of a backend whose consoles are read through ``QueryAnsweringStream``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.capabilities: frozenset[Capability] = backend.capabilities

    async def open_console(self, name: str) -> ConsoleStream:
        return QueryAnsweringStream(await self.backend.open_console(name))
