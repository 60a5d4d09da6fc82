"""``LibvirtBackend`` across a real libvirtd restart, seen from inside: the console
re-opens by itself, and nothing of the dead connection outlives it.

libvirt's remote driver never frees a stream's callback data, which held the stream,
its connection and the console (``vmws.backends.libvirt.console``); a stream of a dead connection
reports nothing, so a console nobody typed into stayed on it, silent. Both are checked
here against a real daemon and guest; the end-to-end view is
``tests/e2e_libvirt/test_faults.py``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from tests.contract.suite import LOGIN, PROMPT, ConsoleReader
from tests.harness.daemon import (
    LIBVIRTD,
    ensure_libvirtd,
    start_libvirtd,
    stop_libvirtd,
)
from tests.harness.hosts import (
    LIBVIRT_GROUP,
    harness_cli,
    remove_stale_test_vms,
    require_qemu,
    vm_prefix,
)
from tests.harness.terminal import QueryAnsweringStream
from vmws.backend import VMInfo, VMStatus

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

URI = "qemu:///system"
NAME = f"{vm_prefix('rs')}g"
BOOT = 180.0


@pytest.fixture(scope="module")
def guest() -> Iterator[str]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    try:
        harness_cli("up", NAME, "--uri", URI, "--accel", os.environ.get("VMWS_TEST_ACCEL", "auto"), "--replace")
        yield NAME
    finally:
        ensure_libvirtd(URI)
        harness_cli("down", NAME, "--uri", URI)


async def _until(predicate: object, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_after_a_restart_the_console_reopens_and_the_dead_connection_is_freed(guest: str) -> None:
    from vmws.backends.libvirt.aio import ensure_event_impl
    from vmws.backends.libvirt.backend import LibvirtBackend
    from vmws.backends.libvirt.console import LibvirtConsole

    impl = ensure_event_impl()
    registered_before = set(impl.callbacks)
    backend = LibvirtBackend(uri=URI, vm_filter=guest)
    statuses: list[VMInfo] = []
    backend.subscribe(statuses.append)
    await backend.start()
    closed = False
    try:
        console = await backend.open_console(guest)
        assert isinstance(console, LibvirtConsole)
        reader = ConsoleReader(QueryAnsweringStream(console))
        await reader.send(b"\r")
        await reader.expect(LOGIN + b"|" + PROMPT, BOOT)

        old_conn = weakref.ref(backend.connection.conn)
        old_stream = weakref.ref(console._stream)
        async with LIBVIRTD.exclusive_async():
            seen = len(statuses)
            await asyncio.to_thread(stop_libvirtd)
            await _until(lambda: any(i.status is VMStatus.ERROR for i in statuses[seen:]), 30, "error reported")
            await asyncio.to_thread(start_libvirtd, URI)
        await _until(lambda: statuses[-1].status is VMStatus.RUNNING, 60, "running again")

        # Re-opened without anyone writing to it (a write would have found the dead stream).
        await _until(
            lambda: console._stream is not None and console._stream is not old_stream(), 30, "console re-opened"
        )
        gc.collect()
        assert old_stream() is None, "the dead connection's console stream is still alive"
        assert old_conn() is None, "the dead libvirt connection is still alive"

        await reader.send(b"\r")
        await reader.expect(LOGIN + b"|" + PROMPT, 30)

        new_conn = weakref.ref(backend.connection.conn)
        await backend.close()
        closed = True
        await reader.expect_eof(10)
        gc.collect()
        assert new_conn() is None, "the connection outlived close()"
        assert set(impl.callbacks) <= registered_before, f"still registered after close: {impl!r}"
    finally:
        if not closed:
            await backend.close()
