"""Every WebSocket close code and every error code vmws uses, each defined once.

``CloseCode`` follows python-websockets' ``frames.CloseCode``: RFC 6455 codes keep
their registry names, vmws's own (4000–4999) are named for what they refuse.
``docs/schema/close-codes.json`` lists exactly these members plus the codes only a
client sends or reports (``tests/schema/test_close_codes.py`` checks both ways), and
the web UI's codes are generated from that file. ``ErrorCode`` is the ``code`` field of
``error`` and failed ``response`` messages (the schema's ``ErrorCode``).
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "ErrorCode"]


class CloseCode(enum.IntEnum):
    """Close codes the server sends (docs/protocol.md has the table)."""

    NORMAL_CLOSURE = 1000  # console closed because the VM stopped
    GOING_AWAY = 1001  # server shutting down
    PROTOCOL_ERROR = 1002  # the peer broke RFC 6455 framing
    INVALID_DATA = 1007  # a text frame (or close reason) that is not UTF-8
    POLICY_VIOLATION = 1008  # a malformed request (INVALID_COMMAND)
    MESSAGE_TOO_BIG = 1009  # an inbound message over --max-message-bytes (sent by Tornado)
    INTERNAL_ERROR = 1011  # a refusal the server did not foresee
    SERVICE_RESTART = 1012  # a cluster node draining (SIGTERM): reconnect, another node serves
    TRY_AGAIN_LATER = 1013  # what needs the cluster's Redis while it cannot be reached
    UNAUTHENTICATED = 4001  # bad, missing or expired token (AUTH_ERROR)
    FORBIDDEN = 4003  # permission missing or VM outside the token's vms (AUTH_ERROR)
    VM_NOT_FOUND = 4004
    NO_CONSOLE = 4005  # the backend has no consoles
    NO_SCREEN = 4006  # the VM has no graphical screen, or not from this node
    TOO_SLOW = 4008  # output backlog over its bound
    VM_NOT_RUNNING = 4009  # console of a VM that is not running
    HEARTBEAT_TIMEOUT = 4010  # silent for two heartbeat intervals
    TOO_MANY = 4029  # a connection, viewer or ticket limit is reached (AUTH_ERROR)


class ErrorCode(enum.StrEnum):
    """The protocol's error codes (a ``str``: written to the wire as its value)."""

    AUTH_ERROR = "AUTH_ERROR"
    VM_NOT_FOUND = "VM_NOT_FOUND"
    VM_NOT_RUNNING = "VM_NOT_RUNNING"
    INVALID_COMMAND = "INVALID_COMMAND"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
