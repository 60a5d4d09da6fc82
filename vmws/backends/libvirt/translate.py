"""libvirt exceptions → ``vmws.errors``: nothing from libvirt leaves ``harness/``."""

from __future__ import annotations

import libvirt

from vmws.errors import BackendError, BackendUnavailable, CommandFailed, VMNotFound, VMNotRunning

__all__ = ["translate", "CONNECTION_LOST_CODES"]

# Codes that mean "the daemon is gone", not "the request was wrong".
CONNECTION_LOST_CODES = frozenset({
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
})


def translate(exc: libvirt.libvirtError, name: str | None = None, what: str = "operation") -> BackendError:
    """The vmws error for a libvirt failure of ``what`` on VM ``name``."""
    code = exc.get_error_code()
    detail = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return VMNotFound(f"VM {name!r} not found" if name else detail)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        # libvirt says "domain is not running" this way (and a few other misuses).
        return VMNotRunning(f"{what} failed for VM {name!r}: {detail}")
    if code in CONNECTION_LOST_CODES:
        return BackendUnavailable(f"libvirt is unreachable: {detail}")
    return CommandFailed(f"{what} failed for VM {name!r}: {detail}")
