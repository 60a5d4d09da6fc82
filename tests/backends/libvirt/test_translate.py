"""libvirt errors → vmws errors: which failures mean the daemon is gone."""

from __future__ import annotations

import libvirt
import pytest

from vmws.backends.libvirt.translate import connection_lost, translate
from vmws.errors import BackendUnavailable, CommandFailed, VMNotFound, VMNotRunning


def _error(code: int, domain: int, message: str) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    # The tuple virGetLastError gives: code, domain, message, level, str1..3, int1, int2.
    exc.err = (code, domain, message, 2, None, None, None, 0, 0)
    return exc


def test_a_guest_killed_under_a_call_concerns_that_vm_not_the_daemon() -> None:
    # QEMU's monitor socket reset when its process dies: an errno, from the QEMU driver.
    exc = _error(
        libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_QEMU, "Unable to read from monitor: Connection reset by peer"
    )
    assert not connection_lost(exc)
    assert isinstance(translate(exc, "web-1", "sample"), CommandFailed)


@pytest.mark.parametrize("domain", ["VIR_FROM_RPC", "VIR_FROM_REMOTE"])
def test_a_system_error_of_the_transport_means_the_daemon_is_gone(domain: str) -> None:
    exc = _error(libvirt.VIR_ERR_SYSTEM_ERROR, getattr(libvirt, domain), "Cannot recv data: Connection reset by peer")
    assert connection_lost(exc)
    assert isinstance(translate(exc, "web-1"), BackendUnavailable)


@pytest.mark.parametrize("code", ["VIR_ERR_NO_CONNECT", "VIR_ERR_INVALID_CONN", "VIR_ERR_RPC"])
def test_connection_codes_mean_the_daemon_is_gone_whatever_the_domain(code: str) -> None:
    exc = _error(getattr(libvirt, code), libvirt.VIR_FROM_QEMU, "gone")
    assert connection_lost(exc) and isinstance(translate(exc), BackendUnavailable)


def test_domain_errors_keep_their_meaning() -> None:
    assert isinstance(translate(_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, "no"), "x"), VMNotFound)
    assert isinstance(
        translate(_error(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, "not running"), "x"), VMNotRunning
    )
