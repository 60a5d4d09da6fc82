"""One RFB session served over a socket, on an event loop the simulator does not import.

The loop is duck-typed as a ``Reactor`` (``add_reader``/``remove_reader``/
``add_writer``/``remove_writer``/``call_later``, which asyncio's and uvloop's loops
have), as ``simulator.clock`` duck-types the loop's clock: the simulator stays
sans-I/O. Reads are bounded (``READ_CHUNK`` at a time); writes go out as the socket
takes them, and the session makes no new update until the last one is out, so a
viewer that stops reading holds one frame here at most.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

from simulator.screen.rfb import RFBSession

__all__ = ["Reactor", "SocketLink", "READ_CHUNK", "LINGER"]

log = logging.getLogger("simulator.screen")

READ_CHUNK = 64 * 1024
LINGER = 10.0  # seconds a stopped VM's last update may take to leave before the socket is closed anyway


class Reactor(Protocol):
    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> Any: ...

    def remove_reader(self, fd: Any) -> Any: ...

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> Any: ...

    def remove_writer(self, fd: Any) -> Any: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class SocketLink:
    """Carries bytes between ``sock`` and a session; ``on_close`` when the socket is closed."""

    def __init__(
        self,
        sock: socket.socket,
        reactor: Reactor,
        make_session: Callable[[Callable[[], None]], RFBSession],
        on_close: Callable[[SocketLink], None],
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._reactor = reactor
        self._on_close = on_close
        self._writing = False
        self._flushing = False
        self.closed = False
        self._lingering = False
        self.session = make_session(self.flush)
        reactor.add_reader(self._fd, self._readable)
        self.flush()

    def _readable(self) -> None:
        try:
            data = self._sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            log.debug("screen viewer socket failed: %s", error)
            self.close()
            return
        if not data:
            self.close()  # the viewer went away
            return
        self.session.receive(data)
        self.flush()

    def flush(self) -> None:
        """Send what the session has for the viewer; close once it is done."""
        if self.closed or self._flushing:
            return
        self._flushing = True  # the session may add output while we send (the next update)
        try:
            session = self.session
            while session.output:
                try:
                    sent = self._sock.send(session.output)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as error:
                    log.debug("screen viewer socket failed: %s", error)
                    self.close()
                    return
                del session.output[:sent]
                if not session.output:
                    session.sent()  # may queue the next update
            if session.closed:
                self.close()  # a protocol error: whatever could not be sent at once is dropped
                return
            if session.output and not self._writing:
                self._reactor.add_writer(self._fd, self.flush)
                self._writing = True
            elif not session.output and self._writing:
                self._reactor.remove_writer(self._fd)
                self._writing = False
            if session.done and not session.output:
                self.close()
            elif session.finishing and not self._lingering:
                self._lingering = True
                self._reactor.call_later(LINGER, self.close)
        finally:
            self._flushing = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._reactor.remove_reader(self._fd)
        if self._writing:
            self._reactor.remove_writer(self._fd)
        self._sock.close()
        self._on_close(self)
