"""Who is on a console: each viewer's user, mode and the moment it joined.

A ``viewers`` message with the whole list goes to every viewer of the console whenever
one joins or leaves, so a client never has to merge deltas (and a missed message is
repaired by the next one). The list is small: a console holds at most
``--max-console-viewers`` (32) viewers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vmws import protocol
from vmws.peer import Peer

__all__ = ["ConsoleMode", "Viewer", "Presence", "MAX_USER_CHARS"]

# A `sub` is the token issuer's string, of any length: each viewer's is cut to this in
# the list, so 32 viewers with 60 KB names cannot make every join a multi-megabyte
# broadcast to every viewer.
MAX_USER_CHARS = 256


class ConsoleMode(str, enum.Enum):
    INTERACTIVE = "interactive"  # sees the output and types
    WATCH = "watch"  # sees the output only: its console_input is refused


@dataclass(frozen=True, slots=True)
class Viewer:
    user: str
    mode: ConsoleMode
    joined_at: float  # wall-clock seconds


class Presence:
    def __init__(self) -> None:
        # Insertion order is join order, which is the order of the list sent.
        self._viewers: dict[Peer, Viewer] = {}

    def join(self, peer: Peer, mode: ConsoleMode, now: float) -> None:
        user = peer.user if len(peer.user) <= MAX_USER_CHARS else peer.user[: MAX_USER_CHARS - 1] + "…"
        self._viewers[peer] = Viewer(user, mode, now)
        self.announce(now)

    def leave(self, peer: Peer, now: float) -> None:
        if self._viewers.pop(peer, None) is not None:
            self.announce(now)

    def listing(self) -> list[Viewer]:
        """The viewers in join order, those being closed left out (they are leaving)."""
        return [viewer for peer, viewer in self._viewers.items() if not peer.closing]

    def announce(self, now: float) -> None:
        """Send the current list to every viewer still open (serialised once)."""
        message = protocol.viewers_message(
            [(v.user, v.mode.value, v.joined_at) for v in self.listing()],
            now,
        )
        for peer in list(self._viewers):
            if not peer.closing:
                peer.send(message)

    def clear(self) -> None:
        self._viewers.clear()
