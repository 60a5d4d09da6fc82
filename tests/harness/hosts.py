"""What the libvirt tests need from the host, and how they say it is missing.

In CI (``CI=true``) a missing piece is a failure: the libvirt and QEMU suites must run
there, never skip. Elsewhere it is a skip whose reason says how to enable them.

Calls that talk to libvirtd hold ``tests.harness.daemon.LIBVIRTD`` steady, so that a
fault test restarting it waits for them (and they for it).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType

import pytest

from tests.harness.daemon import LIBVIRTD

__all__ = [
    "ENABLE_HINT",
    "LIBVIRT_GROUP",
    "guests_up",
    "harness_cli",
    "in_ci",
    "remove_stale_test_vms",
    "require_libvirt",
    "require_qemu",
    "vm_prefix",
]

ENABLE_HINT = "run `sudo bash scripts/install-libvirt.sh` (see docs/libvirt.md)"
# Every libvirt module carries this: under `pytest -n 2 --dist loadgroup` they run one
# after the other on one worker. (Not with pytest 9.2 and pytest-xdist 3.8, which ignore
# the mark, pytest-xdist#1386: the daemon lock keeps the fault tests safe regardless.)
LIBVIRT_GROUP = pytest.mark.xdist_group("libvirt")


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
        with LIBVIRTD.steady():
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
    process registers (``vmws.backends.libvirt.aio``): blocking libvirt calls from a test process that
    already ran a ``LibvirtBackend`` would land on a closed loop.
    """
    with LIBVIRTD.steady():
        result = subprocess.run(
            [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout
        )
    if result.returncode != 0:
        pytest.fail(f"python -m harness {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def remove_stale_test_vms(uri: str = "qemu:///system") -> None:
    """Remove test VMs left behind by test processes that no longer run (a killed run)."""
    with LIBVIRTD.steady():
        listing = subprocess.run(
            ["virsh", "-c", uri, "list", "--all", "--name"], capture_output=True, text=True, timeout=60
        )
    for name in listing.stdout.split():
        match = re.fullmatch(r"vmws-[a-z]+-(\d+)-.*", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            harness_cli("down", name, "--uri", uri)


@contextlib.contextmanager
def guests_up(uri: str, guests: Mapping[str, tuple[str, ...]]) -> Iterator[None]:
    """Tiny guests ``name: extra `harness up` arguments`` for a test module, removed after.

    Stale guests of killed runs go first; ``VMWS_TEST_ACCEL`` picks the accelerator.
    """
    require_qemu(uri)
    remove_stale_test_vms(uri)
    common = ("--uri", uri, "--accel", os.environ.get("VMWS_TEST_ACCEL", "auto"), "--replace")
    try:
        for name, extra in guests.items():
            harness_cli("up", name, *common, *extra)
        yield
    finally:
        for name in guests:
            harness_cli("down", name, "--uri", uri)
