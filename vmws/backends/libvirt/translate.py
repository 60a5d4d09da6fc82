"""libvirt exceptions → ``vmws.errors``: nothing from libvirt leaves ``vmws/backends/libvirt/``."""

from __future__ import annotations

import libvirt

from vmws.errors import BackendError, BackendUnavailable, CommandFailed, VMNotFound, VMNotRunning

__all__ = ["translate", "connection_lost", "CONNECTION_LOST_CODES"]

# Codes that mean "the daemon is gone", not "the request was wrong".
CONNECTION_LOST_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_AUTH_FAILED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    }
)
# A system error (an errno) means the daemon is gone only when the connection's own
# transport raised it. The QEMU driver reports a guest killed under a call the same
# way ("Unable to read from monitor: Connection reset by peer", VIR_FROM_QEMU): that
# concerns one VM, and taking it for a lost daemon flashed `error` on every VM.
_TRANSPORT_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})


def connection_lost(exc: libvirt.libvirtError) -> bool:
    """Whether ``exc`` says the connection to libvirtd is gone."""
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_SYSTEM_ERROR:
        return exc.get_error_domain() in _TRANSPORT_DOMAINS
    return code in CONNECTION_LOST_CODES


def translate(exc: libvirt.libvirtError, name: str | None = None, what: str = "operation") -> BackendError:
    """The vmws error for a libvirt failure of ``what`` on VM ``name``."""
    code = exc.get_error_code()
    detail = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return VMNotFound(f"VM {name!r} not found" if name else detail)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        # libvirt says "domain is not running" this way (and a few other misuses).
        return VMNotRunning(f"{what} failed for VM {name!r}: {detail}")
    if connection_lost(exc):
        return BackendUnavailable(f"libvirt is unreachable: {detail}")
    return CommandFailed(f"{what} failed for VM {name!r}: {detail}")
