"""Errors that cross module lines, each carrying its stable wire code.

    VMWSError                    (code)
    ├── ClientError              the peer sent something wrong
    │   ├── InvalidCommand       INVALID_COMMAND
    │   └── AuthError            AUTH_ERROR     (close 4001 unauthenticated / 4003 forbidden)
    └── BackendError             UNKNOWN_ERROR  the VM source refused or failed
        ├── VMNotFound           VM_NOT_FOUND   (close 4004)
        ├── VMNotRunning         VM_NOT_RUNNING (close 4009 on the console endpoint)
        ├── CommandFailed        UNKNOWN_ERROR  the action ran and failed (fault, guest refused)
        ├── CommandTimeout       UNKNOWN_ERROR  the action did not finish in time
        ├── NoConsole            UNKNOWN_ERROR  the backend has no consoles (close 4005)
        ├── NoScreen             UNKNOWN_ERROR  no graphical screen, or not from this node (close 4006)
        └── BackendUnavailable   UNKNOWN_ERROR  hypervisor unreachable (libvirtd down)

Backends raise only these; a libvirt exception never leaves ``harness/``.
"""

from __future__ import annotations

from vmws.codes import CloseCode, ErrorCode

__all__ = [
    "VMWSError",
    "ClientError",
    "InvalidCommand",
    "AuthError",
    "BackendError",
    "VMNotFound",
    "VMNotRunning",
    "CommandFailed",
    "CommandTimeout",
    "NoConsole",
    "NoScreen",
    "BackendUnavailable",
]


class VMWSError(Exception):
    """Base of every vmws error; ``code`` is the protocol's error code."""

    code: ErrorCode = ErrorCode.UNKNOWN_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(VMWSError):
    """The peer sent something wrong."""


class InvalidCommand(ClientError):
    code = ErrorCode.INVALID_COMMAND

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class AuthError(ClientError):
    """Authentication (close 4001) or authorization (close 4003) failed."""

    code = ErrorCode.AUTH_ERROR

    def __init__(self, message: str, close_code: CloseCode = CloseCode.UNAUTHENTICATED) -> None:
        super().__init__(message)
        self.close_code = close_code


class BackendError(VMWSError):
    """The VM source refused or failed an operation."""


class VMNotFound(BackendError):
    code = ErrorCode.VM_NOT_FOUND


class VMNotRunning(BackendError):
    code = ErrorCode.VM_NOT_RUNNING


class CommandFailed(BackendError):
    """The action was attempted and failed (a scripted fault, a guest that refused)."""


class CommandTimeout(BackendError):
    """The action did not complete within its deadline."""


class NoConsole(BackendError):
    """The backend cannot open consoles at all (libvirt's ``test:///`` driver, for one)."""


class NoScreen(BackendError):
    """The VM has no graphical screen (no VNC device, a backend without screens), or
    this node cannot open it (a VM owned by another node or on a remote host).

    The screen socket sends no text, so the message is its close reason: written by
    vmws, it never quotes the VM's name or any other client input (and is cut to 123 bytes).
    """


class BackendUnavailable(BackendError):
    """The hypervisor cannot be reached right now (for example libvirtd restarting)."""
