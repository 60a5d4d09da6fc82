"""A VM's screen: tty1's terminal and the RFB viewers watching it.

The machine feeds it what tty1 shows (the boot log, tty1's getty and shell) and
asks it for new viewers; the viewers' keys go back to the machine through its
``ScreenHost`` side. Every viewer sees the same picture (RFB shared sessions).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Protocol

from simulator.screen.link import Reactor, SocketLink
from simulator.screen.rfb import RFBSession
from simulator.screen.terminal import Row, Terminal

__all__ = ["ScreenHost", "Display", "PUMP_BYTES"]

PUMP_BYTES = 4096  # flood output drawn per update: a flood on tty1 goes at the viewers' pace


class ScreenHost(Protocol):
    """What a screen needs from its machine."""

    @property
    def screen_frozen(self) -> bool: ...

    def screen_keys(self, data: bytes) -> None: ...

    def screen_pump(self, max_bytes: int) -> bool: ...

    def ctrl_alt_del(self) -> None: ...


class Display:
    def __init__(self, name: str, host: ScreenHost) -> None:
        self.name = name
        self._host = host
        self.terminal = Terminal()
        self._links: list[SocketLink] = []

    # what rfb.Screen needs

    @property
    def frozen(self) -> bool:
        return self._host.screen_frozen

    def rows(self) -> list[Row]:
        return self.terminal.rows()

    def pump(self) -> bool:
        return self._host.screen_pump(PUMP_BYTES)

    def type(self, data: bytes) -> None:
        self._host.screen_keys(data)

    def ctrl_alt_del(self) -> None:
        self._host.ctrl_alt_del()

    # the machine's side

    @property
    def sessions(self) -> tuple[RFBSession, ...]:
        """The viewers' sessions (their output waiting to be sent is ``output``)."""
        return tuple(link.session for link in self._links)

    def feed(self, data: bytes) -> None:
        """tty1 printed ``data``: viewers waiting for a change get it."""
        self.terminal.feed(data)
        self.wake()

    def clear(self) -> None:
        self.terminal.clear()
        self.wake()

    def wake(self) -> None:
        for link in list(self._links):
            link.session.update()

    def open(self, reactor: Reactor) -> socket.socket:
        """A new viewer: one end of a socket pair served here, the other returned."""
        ours, theirs = socket.socketpair()
        try:
            self.serve(ours, reactor)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        return theirs

    def serve(self, sock: socket.socket, reactor: Reactor) -> None:
        """A new viewer on ``sock``, a connected socket (a socket pair's end, or a TCP
        connection a listener accepted): its RFB session is served here, on ``reactor``,
        and the socket is closed when it ends."""
        self._links.append(SocketLink(sock, reactor, self._session, self._closed))

    def _session(self, on_output: Callable[[], None]) -> RFBSession:
        return RFBSession(self, on_output)

    def _closed(self, link: SocketLink) -> None:
        if link in self._links:
            self._links.remove(link)

    def end(self) -> None:
        """The VM stopped: each viewer gets its last update, then its socket closes."""
        for link in list(self._links):
            link.session.finish()
