"""The one translation table from libvirt domain states to the protocol's statuses.

Only this module knows libvirt's state and event numbers (mirrored here as enums; they
are libvirt's stable ABI, and ``tests/backends/libvirt/test_states.py`` checks them against the
installed binding). Everything else in vmws speaks ``VMStatus``.

Decisions: a shut-off domain with a managed-save image is ``suspended``
(its state is on disk); a domain halted in RAM is ``paused``; a crash, or a pause
caused by an I/O error, is ``error`` until the next start. Transient states are folded
into where they are going: shutting down is still ``running``, a pause taken while a
managed save is written is already ``suspended``.
"""

from __future__ import annotations

import enum

from vmws.backend import VMStatus

__all__ = ["DomainState", "PausedReason", "ShutoffReason", "LifecycleEvent", "status_of"]


class DomainState(enum.IntEnum):
    """``virDomainState``."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7


class PausedReason(enum.IntEnum):
    """``virDomainPausedReason``."""

    UNKNOWN = 0
    USER = 1
    MIGRATION = 2
    SAVE = 3
    DUMP = 4
    IOERROR = 5
    WATCHDOG = 6
    FROM_SNAPSHOT = 7
    SHUTTING_DOWN = 8
    SNAPSHOT = 9
    CRASHED = 10
    STARTING_UP = 11
    POSTCOPY = 12
    POSTCOPY_FAILED = 13
    API_ERROR = 14


class ShutoffReason(enum.IntEnum):
    """``virDomainShutoffReason``."""

    UNKNOWN = 0
    SHUTDOWN = 1
    DESTROYED = 2
    CRASHED = 3
    MIGRATED = 4
    SAVED = 5
    FAILED = 6
    FROM_SNAPSHOT = 7
    DAEMON = 8


class LifecycleEvent(enum.IntEnum):
    """``virDomainEventType``: what a lifecycle callback reports."""

    DEFINED = 0
    UNDEFINED = 1
    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5
    SHUTDOWN = 6
    PMSUSPENDED = 7
    CRASHED = 8


_PAUSED: dict[int, VMStatus] = {
    PausedReason.SAVE: VMStatus.SUSPENDED,
    PausedReason.STARTING_UP: VMStatus.RUNNING,
    PausedReason.SHUTTING_DOWN: VMStatus.RUNNING,
    PausedReason.IOERROR: VMStatus.ERROR,
    PausedReason.CRASHED: VMStatus.ERROR,
    PausedReason.POSTCOPY_FAILED: VMStatus.ERROR,
    PausedReason.API_ERROR: VMStatus.ERROR,
}

_SHUTOFF: dict[int, VMStatus] = {
    ShutoffReason.CRASHED: VMStatus.ERROR,
    ShutoffReason.FAILED: VMStatus.ERROR,
}

_BY_STATE: dict[int, VMStatus] = {
    # NOSTATE is only seen on an active domain between states (virt-manager folds it
    # into running the same way).
    DomainState.NOSTATE: VMStatus.RUNNING,
    DomainState.RUNNING: VMStatus.RUNNING,
    DomainState.BLOCKED: VMStatus.RUNNING,
    DomainState.SHUTDOWN: VMStatus.RUNNING,
    DomainState.CRASHED: VMStatus.ERROR,
    DomainState.PMSUSPENDED: VMStatus.PAUSED,
}


def status_of(state: int, reason: int, *, managed_save: bool) -> VMStatus:
    """The protocol status of a domain in ``state`` for ``reason``.

    ``managed_save`` says whether the domain has a managed-save image (only read for
    shut-off domains).
    """
    if state == DomainState.SHUTOFF:
        if managed_save:
            return VMStatus.SUSPENDED
        return _SHUTOFF.get(reason, VMStatus.STOPPED)
    if state == DomainState.PAUSED:
        return _PAUSED.get(reason, VMStatus.PAUSED)
    return _BY_STATE.get(state, VMStatus.ERROR)
