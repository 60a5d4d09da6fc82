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
        """Output queued for this peer and not yet written to its socket."""

    def send(self, text: str, *, droppable: bool = False) -> None:
        """Queue ``text`` without waiting. ``droppable`` messages (metrics) are skipped
        while the peer is behind; past its bound a peer is closed as too slow."""

    def ping(self) -> None:
        """Send a protocol-level ping."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection (idempotent)."""
