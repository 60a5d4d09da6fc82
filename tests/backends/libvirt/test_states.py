"""The libvirt state table: every state and reason lands on a protocol status."""

from __future__ import annotations

import pytest

from tests.harness.hosts import require_libvirt
from vmws.backend import VMStatus
from vmws.backends.libvirt.states import DomainState, LifecycleEvent, PausedReason, ShutoffReason, status_of

R, S, P, U, E = VMStatus.RUNNING, VMStatus.STOPPED, VMStatus.PAUSED, VMStatus.SUSPENDED, VMStatus.ERROR


@pytest.mark.parametrize(
    ("state", "reason", "managed", "expected"),
    [
        (DomainState.RUNNING, 1, False, R),
        (DomainState.BLOCKED, 0, False, R),
        (DomainState.SHUTDOWN, 1, False, R),  # shutting down: still running until it is off
        (DomainState.NOSTATE, 0, False, R),
        (DomainState.PAUSED, PausedReason.USER, False, P),
        (DomainState.PAUSED, PausedReason.SAVE, False, U),  # a managed save in progress
        (DomainState.PAUSED, PausedReason.IOERROR, False, E),
        (DomainState.PAUSED, PausedReason.CRASHED, False, E),
        (DomainState.PAUSED, PausedReason.STARTING_UP, False, R),
        (DomainState.PMSUSPENDED, 0, False, P),
        (DomainState.SHUTOFF, ShutoffReason.SHUTDOWN, False, S),
        (DomainState.SHUTOFF, ShutoffReason.DESTROYED, False, S),
        (DomainState.SHUTOFF, ShutoffReason.SAVED, True, U),
        (DomainState.SHUTOFF, ShutoffReason.DESTROYED, True, U),  # the save image is what counts
        (DomainState.SHUTOFF, ShutoffReason.CRASHED, False, E),
        (DomainState.SHUTOFF, ShutoffReason.FAILED, False, E),
        (DomainState.CRASHED, 0, False, E),
        (99, 0, False, E),  # a state this table does not know is not reported as healthy
    ],
)
def test_status_of(state: int, reason: int, managed: bool, expected: VMStatus) -> None:
    assert status_of(state, reason, managed_save=managed) is expected


def test_managed_save_only_matters_when_shut_off() -> None:
    assert status_of(DomainState.RUNNING, 1, managed_save=True) is R


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (DomainState, "VIR_DOMAIN_"),
        (PausedReason, "VIR_DOMAIN_PAUSED_"),
        (ShutoffReason, "VIR_DOMAIN_SHUTOFF_"),
        (LifecycleEvent, "VIR_DOMAIN_EVENT_"),
    ],
)
def test_mirrored_numbers_match_the_binding(enum: type, prefix: str) -> None:
    libvirt = require_libvirt()
    # A binding built against an older libvirt lacks the newest reasons; those it has must agree.
    known = [m for m in enum if hasattr(libvirt, prefix + m.name)]
    assert len(known) >= len(enum) - 2
    for member in known:
        assert getattr(libvirt, prefix + member.name) == member.value, member
