"""The system libvirtd under test: a lock that keeps it steady while tests use it, and the
faults the fault tests inflict on it (a restart, a guest's QEMU killed).

libvirtd is one per host, shared by every libvirt test of every pytest process here
(both xdist workers, and other runs on the same machine). A test that restarts it
would pull it from under all of them, so ``LIBVIRTD`` is a readers-writer lock across
processes (``flock`` on one file): tests and helper calls that talk to the daemon hold
it *steady* (shared); a restart holds it *exclusive*, and keeps it a few seconds after
the daemon is back so long-lived clients of other tests (a module's ``vmws serve``)
have reconnected before those tests go on. The xdist group ``libvirt`` would serialise
the libvirt modules anyway, but pytest 9.2 with pytest-xdist 3.8 ignores it
(pytest-xdist#1386), and it never covered other pytest runs.

A writer first takes a gate that new readers must pass, so a stream of tests on the
other worker cannot starve a restart. Every wait is bounded and fails with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

__all__ = [
    "LIBVIRTD",
    "SETTLE",
    "DaemonLock",
    "ensure_libvirtd",
    "kill_qemu",
    "libvirtd_pid",
    "libvirtd_steady",
    "start_libvirtd",
    "stop_libvirtd",
]

_LOCK_DIR = Path(os.environ.get("VMWS_LIBVIRTD_LOCK_DIR", "/tmp"))
_PIDFILE = Path("/run/libvirtd.pid")
_POLL = 0.02
# A reader waits out one restart; a writer waits out the longest test of another worker.
_WAIT = 240.0
# How long a restart keeps the daemon to itself once it answers again: the backend's
# reconnect backoff starts at 0.5 s and doubles; a restart here takes ~0.2 s.
SETTLE = 3.0


class DaemonLock:
    """Shared ("steady") and exclusive holds on the daemon, re-entrant within a process."""

    def __init__(self, directory: Path) -> None:
        self._paths = (directory / "vmws-libvirtd.lock", directory / "vmws-libvirtd.gate")
        self._fds: tuple[int, int] | None = None
        self._steady = 0
        self._exclusive = False
        self._mutex = threading.Lock()

    def _files(self) -> tuple[int, int]:
        if self._fds is None:
            lock, gate = (os.open(p, os.O_RDWR | os.O_CREAT, 0o666) for p in self._paths)
            self._fds = (lock, gate)
        return self._fds

    @staticmethod
    def _flock(fd: int, operation: int, what: str) -> None:
        deadline = time.monotonic() + _WAIT
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"libvirtd lock: no {what} hold within {_WAIT:g} s (another test holds it)")
                time.sleep(_POLL)

    @contextlib.contextmanager
    def steady(self) -> Iterator[None]:
        """Nobody restarts libvirtd while this is held (shared)."""
        with self._mutex:
            if self._steady == 0 and not self._exclusive:
                lock, gate = self._files()
                self._flock(gate, fcntl.LOCK_SH, "gate")  # waits while a restart is queued
                fcntl.flock(gate, fcntl.LOCK_UN)
                self._flock(lock, fcntl.LOCK_SH, "shared")
            self._steady += 1
        try:
            yield
        finally:
            with self._mutex:
                self._steady -= 1
                if self._steady == 0 and not self._exclusive:
                    fcntl.flock(self._files()[0], fcntl.LOCK_UN)

    def acquire_exclusive(self) -> None:
        """Wait until no other process uses the daemon; then it is this process's alone."""
        with self._mutex:
            lock, gate = self._files()
            if self._steady:
                # Let go of our own shared hold before queueing: two processes that both
                # held it and both wait for the gate or the lock would wait for each other.
                fcntl.flock(lock, fcntl.LOCK_UN)
            self._flock(gate, fcntl.LOCK_EX, "gate")
            try:
                self._flock(lock, fcntl.LOCK_EX, "exclusive")
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            self._exclusive = True

    def release_exclusive(self, settle: float = SETTLE) -> None:
        time.sleep(settle)
        with self._mutex:
            self._exclusive = False
            lock = self._files()[0]
            if self._steady:
                self._flock(lock, fcntl.LOCK_SH, "shared")  # back to what this process held
            else:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, settle: float = SETTLE) -> Iterator[None]:
        self.acquire_exclusive()
        try:
            yield
        finally:
            self.release_exclusive(settle)

    @contextlib.asynccontextmanager
    async def exclusive_async(self, settle: float = SETTLE) -> AsyncIterator[None]:
        """``exclusive`` without blocking the loop (clients keep answering pings meanwhile)."""
        await asyncio.to_thread(self.acquire_exclusive)
        try:
            yield
        finally:
            await asyncio.to_thread(self.release_exclusive, settle)


LIBVIRTD = DaemonLock(_LOCK_DIR)


def _steady_while_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("libvirt") is None:
        yield
        return
    with LIBVIRTD.steady():
        yield


# Tests marked ``libvirt`` hold libvirtd steady. Autouse where it is imported: the
# conftests of tests/harness and tests/e2e_libvirt, and tests/contract/test_qemu.py.
libvirtd_steady = pytest.fixture(autouse=True, name="libvirtd_steady")(_steady_while_marked)


# Faults


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (pid {pid}) still runs {timeout:g} s after it was signalled")
        time.sleep(_POLL)


def libvirtd_pid() -> int | None:
    """The running system libvirtd, from its pid file (None when it does not run)."""
    try:
        pid = int(_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def stop_libvirtd(timeout: float = 30.0) -> None:
    """Stop the system libvirtd (SIGTERM, as a service restart does); back once it is gone.

    Hold ``LIBVIRTD.exclusive()``. Running guests are not touched: their QEMU processes
    live on and the next libvirtd takes them over.
    """
    pid = libvirtd_pid()
    if pid is None:
        pytest.fail("libvirtd is not running (no live pid in /run/libvirtd.pid)")
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, timeout, "libvirtd")


def start_libvirtd(uri: str = "qemu:///system", timeout: float = 30.0) -> None:
    """``libvirtd -d``, as scripts/install-libvirt.sh starts it; back when ``uri`` answers."""
    subprocess.run(
        ["libvirtd", "-d"],
        check=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while (
        subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, timeout=timeout, check=False).returncode
        != 0
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"libvirtd did not answer on {uri} within {timeout:g} s of `libvirtd -d`")
        time.sleep(0.1)


def ensure_libvirtd(uri: str = "qemu:///system") -> None:
    """Start libvirtd again if a fault test left it stopped (the tests after it need it)."""
    if libvirtd_pid() is not None:
        return
    with LIBVIRTD.exclusive(settle=0.0):
        if libvirtd_pid() is None:  # not a restart of another process half done
            start_libvirtd(uri)


def kill_qemu(name: str) -> int:
    """``kill -9`` the QEMU process of the running system-URI domain ``name``; its pid."""
    pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 30.0, f"QEMU of {name}")
    return pid
