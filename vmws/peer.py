"""What the hub needs of a connected client, without knowing it is a Tornado socket."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Peer"]


class Peer(Protocol):
    session_id: str
    user: str
    # Loop time of the last frame (message or pong) received from this peer.
    last_seen: float

    @property
    def pending_bytes(self) -> int:
        """Output bytes (as framed on the wire) queued for this peer and not yet written
        to its socket."""

    @property
    def closing(self) -> bool:
        """True from the moment the peer is being closed (by either side): it takes no
        more output, and the hub and its console channels stop counting it."""

    def send(self, text: str, *, droppable: bool = False) -> None:
        """Queue ``text`` without waiting. ``droppable`` messages (metrics) are skipped
        while the peer is behind; past its bound a peer is closed as too slow."""

    def ping(self) -> None:
        """Send a protocol-level ping."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection (idempotent)."""
