"""What the handlers and the hub report, turned into audit events and Prometheus counters.

The handlers and the hub each make one call where something happens (a command ended,
a console session opened or closed, a credential was refused, a ticket was bought); the
decisions — which events to keep, which fields, which counter — live here, so those
busy modules stay about sockets and VMs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from vmws import protocol
from vmws.audit import AuditLog
from vmws.auth import Permission, Principal
from vmws.codes import CloseCode, ErrorCode
from vmws.config import Config
from vmws.errors import AuthError
from vmws.revocations import Revocation, RevokedError
from vmws.telemetry import Telemetry

__all__ = ["Oversight", "refusal_reason"]

log = logging.getLogger("vmws.audit")


def refusal_reason(exc: AuthError) -> str:
    """A refusal's reason from a small fixed set (a metric label, an audit field)."""
    if isinstance(exc, RevokedError):
        return "revoked"
    code = exc.close_code
    if code == CloseCode.FORBIDDEN:
        return "forbidden"
    if code == CloseCode.TOO_MANY:
        return "too_many"
    if code == CloseCode.TRY_AGAIN_LATER:
        return "unavailable"
    message = exc.message
    if message.startswith("missing token") or "needs a token" in message:
        return "missing"
    if "expired" in message and "ticket" not in message:
        return "expired"
    if "ticket" in message:
        return "ticket"
    return "invalid"


class Oversight:
    def __init__(self, config: Config, hub: Any, now: Callable[[], float]) -> None:
        self.audit = AuditLog(config.audit_log, ring_size=config.audit_ring_size, node=config.node_name or "", now=now)
        self.telemetry = Telemetry(hub)
        self._hub = hub
        self._now = now
        # In a cluster: the events of every node (vmws/cluster/audit.py), for GET /api/audit.
        self.shared_audit: Any = None
        # Each open console session's mode, by session id: at close the socket has already
        # let go of its principal.
        self._modes: dict[str, str] = {}

    # Commands

    def command(
        self, vm: str, peer: Any, command: protocol.Command, request_id: str | None, outcome: str, started: float
    ) -> None:
        """One command ended: ``outcome`` is success, failed, timeout, error, refused, dropped or
        forbidden (the token lacks ``control``)."""
        seconds = max(0.0, time.monotonic() - started)
        action = command.action.value
        self.telemetry.command(action, outcome, seconds)
        self.audit.record(
            "command",
            user=peer.user,
            vm=vm,
            action=action,
            force=command.force,
            requestId=request_id,
            outcome=outcome,
            durationMs=round(seconds * 1000, 3),
            session=peer.session_id,
        )

    # Sessions

    def session_opened(self, peer: Any) -> None:
        kind = _session_kind(peer)
        if kind is not None:
            mode = self._modes[peer.session_id] = _mode(peer)
            self.audit.record(
                kind,
                state="opened",
                user=peer.user,
                vm=peer.vm,
                mode=mode,
                session=peer.session_id,
                remote=peer.request.remote_ip,
            )

    def session_closed(self, peer: Any) -> None:
        kind = _session_kind(peer)
        if kind is not None:
            mode = self._modes.pop(peer.session_id, "interactive")
            self.audit.record(
                kind,
                state="closed",
                user=peer.user,
                vm=peer.vm,
                mode=mode,
                session=peer.session_id,
                bytesIn=peer.bytes_in,
                bytesOut=peer.bytes_out,
                closeCode=peer.close_code,
            )

    # Credentials

    def refused(self, exc: Exception, remote: str | None, *, sub: str | None, where: str) -> None:
        """A request or socket refused for its credential or permission (never given the credential)."""
        if not isinstance(exc, AuthError):
            return
        reason = refusal_reason(exc)
        self.telemetry.auth_refused.labels(reason).inc()
        if reason == "too_many":
            return  # a limit, not a credential: counted, not audited
        self.audit.record("auth_refused", reason=reason, message=exc.message, remote=remote, sub=sub, where=where)

    def ticket_issued(self, principal: Principal, remote: str | None) -> None:
        self.telemetry.tickets.inc()
        self.audit.record("ticket_issued", user=principal.sub, remote=remote)

    def revoked(self, entry: Revocation, by: str, remote: str | None) -> int:
        """Audit ``entry`` and close, with 4001, every session it matches; returns how many."""
        self.telemetry.revocations.inc()
        closed = 0
        for peer in list(self._hub.peers):
            principal = getattr(peer, "principal", None)
            if isinstance(principal, Principal) and entry.matches(principal):
                peer.send(protocol.error_message(ErrorCode.AUTH_ERROR, "token has been revoked", self._now()))
                peer.close(CloseCode.UNAUTHENTICATED, "token revoked")
                closed += 1
        self.audit.record(
            "revocation",
            user=by,
            sub=entry.sub,
            jti=entry.jti,
            expiresAt=protocol.iso_timestamp(entry.expires_at),
            remote=remote,
            sessionsClosed=closed,
        )
        log.info("revocation by %s: sub=%s jti=%s; %d sessions closed", by, entry.sub, entry.jti, closed)
        return closed

    def close(self) -> None:
        self.audit.close()


_SESSION_KINDS = {
    protocol.Endpoint.CONSOLE.value: "console_session",
    protocol.Endpoint.SCREEN.value: "screen_session",
}


def _session_kind(peer: Any) -> str | None:
    """The audit kind of a console or screen session; None for other sockets, and for a
    screen another node forwarded here (that node audits it, with the client's address)."""
    if getattr(peer, "forwarded_by", None) is not None:
        return None
    return _SESSION_KINDS.get(getattr(getattr(peer, "endpoint", None), "value", None) or "")


def _mode(peer: Any) -> str:
    """``watch`` or ``interactive``: the console socket's ``mode`` (``?mode=watch``) when it
    has one, else what the token allows (``watch`` without ``console``: watch-only)."""
    mode = getattr(peer, "mode", None)
    if mode is not None:
        return str(getattr(mode, "value", mode))
    principal = getattr(peer, "principal", None)
    if isinstance(principal, Principal) and Permission.CONSOLE not in principal.permissions:
        return "watch"
    return "interactive"
