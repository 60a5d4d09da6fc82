"""What the libvirt tests need from the host, how they say it is missing, and the faults
they inflict on it (a libvirtd restart, a killed QEMU).

In CI (``CI=true``) a missing piece is a failure: the libvirt and QEMU suites must run
there, never skip. Elsewhere it is a skip whose reason says how to enable them.

Every module that talks to libvirt carries ``LIBVIRT_GROUP`` in its ``pytestmark``: under
``pytest -n 2 --dist loadgroup`` they then run one after the other on one worker, so a
test that restarts libvirtd never pulls the daemon from under another libvirt test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

__all__ = [
    "ENABLE_HINT", "LIBVIRT_GROUP", "ensure_libvirtd", "harness_cli", "in_ci", "kill_qemu", "libvirtd_pid",
    "remove_stale_test_vms", "require_libvirt", "require_qemu", "start_libvirtd", "stop_libvirtd", "vm_prefix",
]

ENABLE_HINT = "run `sudo bash scripts/install-libvirt.sh` (see docs/libvirt.md)"
LIBVIRT_GROUP = pytest.mark.xdist_group("libvirt")
_LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}: CI must run the libvirt suite; scripts/install-libvirt.sh should have set it up")
    pytest.skip(f"{reason}; to enable: {ENABLE_HINT}")


def require_libvirt() -> ModuleType:
    """libvirt-python, or a skip (a failure in CI)."""
    try:
        import libvirt
    except ImportError:
        _missing("libvirt-python is not installed")
        raise  # unreachable: _missing never returns
    return libvirt


def require_qemu(uri: str = "qemu:///system") -> None:
    """A libvirt daemon answering on ``uri`` with QEMU behind it, or a skip (a failure in CI)."""
    require_libvirt()
    try:
        result = subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing(f"virsh could not reach {uri} ({exc})")
        return
    if result.returncode != 0 or "QEMU" not in result.stdout:
        _missing(f"no QEMU hypervisor at {uri}: {result.stderr.strip() or result.stdout.strip()}")


def vm_prefix(kind: str) -> str:
    """A VM-name prefix unique to this test process (xdist-safe), e.g. ``vmws-ct-1234-``."""
    return f"vmws-{kind}-{os.getpid()}-"


def harness_cli(*args: str, timeout: float = 300.0) -> str:
    """Run ``python -m harness ARGS`` in its own process; its output, or a failure with stderr.

    Its own process, because libvirt binds its event loop to the first asyncio loop a
    process registers (``harness.aio``): blocking libvirt calls from a test process that
    already ran a ``LibvirtBackend`` would land on a closed loop.
    """
    result = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"python -m harness {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def remove_stale_test_vms(uri: str = "qemu:///system") -> None:
    """Remove test VMs left behind by test processes that no longer run (a killed run)."""
    listing = subprocess.run(["virsh", "-c", uri, "list", "--all", "--name"], capture_output=True, text=True,
                             timeout=60)
    for name in listing.stdout.split():
        match = re.fullmatch(r"vmws-[a-z]+-(\d+)-.*", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            harness_cli("down", name, "--uri", uri)


# Faults

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (a child of this process not reaped yet) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (pid {pid}) still runs {timeout:g} s after it was signalled")
        time.sleep(0.02)


def libvirtd_pid() -> int | None:
    """The running system libvirtd, from its pid file (None when it does not run)."""
    try:
        pid = int(_LIBVIRTD_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def stop_libvirtd(timeout: float = 30.0) -> None:
    """Stop the system libvirtd (SIGTERM, as a service restart does) and wait until it is gone.

    Running guests are not touched: their QEMU processes live on, and the next libvirtd
    picks them up again.
    """
    pid = libvirtd_pid()
    if pid is None:
        pytest.fail("libvirtd is not running (no live pid in /run/libvirtd.pid)")
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, timeout, "libvirtd")


def start_libvirtd(uri: str = "qemu:///system", timeout: float = 30.0) -> None:
    """``libvirtd -d``, as scripts/install-libvirt.sh starts it; back when ``uri`` answers."""
    subprocess.run(["libvirtd", "-d"], check=True, timeout=timeout, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, timeout=timeout,
                         check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"libvirtd did not answer on {uri} within {timeout:g} s of `libvirtd -d`")
        time.sleep(0.1)


def ensure_libvirtd(uri: str = "qemu:///system") -> None:
    """Start libvirtd again if a fault test left it stopped (the tests after it need it)."""
    if libvirtd_pid() is None:
        start_libvirtd(uri)


def kill_qemu(name: str) -> int:
    """``kill -9`` the QEMU process of the running system-URI domain ``name``; its pid."""
    pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 30.0, f"QEMU of {name}")
    return pid
