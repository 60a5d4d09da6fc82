"""The backend contract against real QEMU guests booted from the ``tiny`` image.

Three guests per test module (and per xdist worker, names carry the pid): one kept
running, one kept stopped, and one whose kernel panics a few seconds after boot, so
libvirt reports it crashed (the ``error`` column). They are booted once; each test's
fixtures bring them back to the status it needs through the backend itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.contract.suite import (
    LOGIN,
    PROMPT,
    BackendContract,
    ConsoleReader,
    ContractTimeouts,
)
from tests.harness.daemon import libvirtd_steady
from tests.harness.hosts import LIBVIRT_GROUP, guests_up, vm_prefix
from tests.harness.terminal import TerminalBackend
from vmws.backend import Action, Backend, VMStatus

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]
__all__ = ["libvirtd_steady"]  # autouse: a libvirtd restart in another test waits for each test here

URI = "qemu:///system"
PREFIX = vm_prefix("ct")
RUNNING, STOPPED, CRASHING = f"{PREFIX}run", f"{PREFIX}stop", f"{PREFIX}err"
CRASH_AFTER = 2.0
TIMEOUTS = ContractTimeouts(action=90.0, boot=120.0, console=30.0)


@pytest.fixture(scope="module")
def guests() -> Iterator[None]:
    crashing = ("--no-start", "--crash-after", str(CRASH_AFTER))
    with guests_up(URI, {RUNNING: (), STOPPED: ("--no-start",), CRASHING: crashing}):
        yield


async def _bring(backend: Backend, name: str, status: VMStatus) -> str:
    info = await backend.get(name)
    if info.status is not status:
        action = Action.START if status is VMStatus.RUNNING else Action.STOP
        await asyncio.wait_for(backend.perform(name, action, force=True), TIMEOUTS.boot)
    return name


class TestQemuContract(BackendContract):
    @pytest_asyncio.fixture
    async def backend(self, guests: None) -> AsyncIterator[Backend]:
        from vmws.backends.libvirt.backend import LibvirtBackend

        backend = LibvirtBackend(uri=URI, vm_filter=f"{PREFIX}*", stop_timeout=30.0, restart_timeout=45.0)
        await backend.start()
        yield backend
        await backend.close()

    @pytest_asyncio.fixture
    async def running_vm(self, backend: Backend) -> str:
        return await _bring(backend, RUNNING, VMStatus.RUNNING)

    @pytest_asyncio.fixture
    async def stopped_vm(self, backend: Backend) -> str:
        return await _bring(backend, STOPPED, VMStatus.STOPPED)

    @pytest_asyncio.fixture
    async def error_vm(self, backend: Backend) -> str | None:
        info = await backend.get(CRASHING)
        if info.status is VMStatus.ERROR:
            return CRASHING
        crashed = asyncio.Event()

        def on_status(changed: object) -> None:
            if getattr(changed, "name", None) == CRASHING and getattr(changed, "status", None) is VMStatus.ERROR:
                crashed.set()

        unsubscribe = backend.subscribe(on_status)
        try:
            if info.status is not VMStatus.RUNNING:
                await backend.perform(CRASHING, Action.START)
            await asyncio.wait_for(crashed.wait(), TIMEOUTS.boot)
        finally:
            unsubscribe()
        return CRASHING

    @pytest_asyncio.fixture
    async def hung_stop_vm(self, backend: Backend, running_vm: str, credentials: tuple[str, str]) -> AsyncIterator[str]:
        from vmws.backends.libvirt.backend import LibvirtBackend

        # The tiny guest ignores the ACPI power button that a graceful stop presses
        # while this file exists (until its next boot: /tmp is in RAM). The backend's
        # stop timeout goes past TIMEOUTS.action, so only a cut-in ends the test in time.
        async with self.console(backend, running_vm, (credentials, TIMEOUTS)) as reader:
            await self.run(reader, "touch /tmp/vmws-ignore-power-button", TIMEOUTS)
        assert isinstance(backend, LibvirtBackend)
        saved, backend.stop_timeout = backend.stop_timeout, TIMEOUTS.action * 4
        yield running_vm
        backend.stop_timeout = saved

    @pytest.fixture
    def timeouts(self) -> ContractTimeouts:
        return TIMEOUTS

    @contextlib.asynccontextmanager
    async def console(
        self, backend: Backend, name: str, login: tuple[tuple[str, str], ContractTimeouts] | None = None
    ) -> AsyncIterator[ConsoleReader]:
        # Read as a terminal would: busybox asks for the cursor position after each prompt.
        async with super().console(TerminalBackend(backend), name, login) as reader:  # type: ignore[arg-type]
            if login is None:
                await self._log_out(reader)
            yield reader

    async def _log_out(self, reader: ConsoleReader) -> None:
        """Leave a shell an earlier test logged in to, so the console is at ``login:``."""
        await reader.send(b"\n")
        match = await reader.expect(LOGIN + b"|" + PROMPT, TIMEOUTS.boot)
        if not match.group(0).rstrip().endswith(b":"):
            await reader.send(b"exit\n")
            await reader.expect(LOGIN, TIMEOUTS.console)

    # Beyond the shared suite: what only a real hypervisor can get wrong.

    @pytest.mark.asyncio
    async def test_counters_carry_on_across_suspend_and_resume(self, backend: Backend, running_vm: str) -> None:
        # A restore starts a new QEMU process whose own counters begin at zero; the
        # guest did not reboot, so the protocol's cumulative counters must not drop.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUTS.boot
        before = await backend.sample(running_vm)
        while before.disk_read_bytes == 0:  # the kernel reads the disk's partition table at boot
            assert loop.time() < deadline, "the guest never read its disk"
            await asyncio.sleep(0.5)
            before = await backend.sample(running_vm)
        await asyncio.wait_for(backend.perform(running_vm, Action.SUSPEND), TIMEOUTS.action)
        await asyncio.wait_for(backend.perform(running_vm, Action.RESUME), TIMEOUTS.action)
        after = await backend.sample(running_vm)
        assert after.disk_read_bytes >= before.disk_read_bytes
        assert after.net_rx_bytes >= before.net_rx_bytes and after.net_tx_bytes >= before.net_tx_bytes
