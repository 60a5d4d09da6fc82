"""LibvirtBackend behaviour the contract does not cover, on libvirt's test:/// driver:
losing the connection and getting it back, the VM filter, events from outside."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.contract.test_libvirt_testdriver import driver_uri
from tests.harness.hosts import LIBVIRT_GROUP, require_libvirt
from vmws.backend import Action, VMInfo, VMStatus
from vmws.errors import BackendUnavailable, NoScreen, VMNotFound

pytestmark = [pytest.mark.libvirt, LIBVIRT_GROUP]


@pytest_asyncio.fixture
async def backend(tmp_path: Path) -> AsyncIterator[object]:
    require_libvirt()
    from vmws.backends.libvirt.backend import LibvirtBackend

    backend = LibvirtBackend(uri=driver_uri(tmp_path), vm_filter="td-*", stop_timeout=5.0)
    await backend.start()
    yield backend
    await backend.close()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_lost_connection_reports_error_then_recovers(backend: object) -> None:
    from vmws.backends.libvirt.backend import LibvirtBackend

    assert isinstance(backend, LibvirtBackend)
    seen: list[VMInfo] = []
    backend.subscribe(seen.append)
    backend.connection.lost()  # what the close callback does when libvirtd goes away
    assert {i.name for i in seen if i.status is VMStatus.ERROR} == {"td-running", "td-stopped"}
    with pytest.raises(BackendUnavailable):
        await backend.perform("td-running", Action.PAUSE)
    assert (await backend.get("td-running")).status is VMStatus.ERROR
    # The reconnect task comes back after its first backoff step and reports the truth.
    await _until(lambda: any(i.name == "td-running" and i.status is VMStatus.RUNNING for i in seen))
    assert (await backend.get("td-stopped")).status is VMStatus.STOPPED
    info = await backend.perform("td-running", Action.PAUSE)
    assert info.status is VMStatus.PAUSED


@pytest.mark.asyncio
async def test_filter_hides_other_domains(tmp_path: Path) -> None:
    require_libvirt()
    from vmws.backends.libvirt.backend import LibvirtBackend

    backend = LibvirtBackend(uri=driver_uri(tmp_path), vm_filter="td-run*")
    await backend.start()
    try:
        assert [i.name for i in await backend.list()] == ["td-running"]
        with pytest.raises(VMNotFound):
            await backend.get("td-stopped")
        with pytest.raises(VMNotFound):
            await backend.perform("td-stopped", Action.START)
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_changes_made_directly_in_libvirt_arrive_as_events(backend: object, tmp_path: Path) -> None:
    from vmws.backends.libvirt.backend import LibvirtBackend

    assert isinstance(backend, LibvirtBackend)
    seen: list[VMInfo] = []
    backend.subscribe(seen.append)
    before = await backend.get("td-stopped")
    await asyncio.sleep(0.05)  # the clock steps on: the change is strictly later than before's
    # Straight through libvirt, not perform(): test:/// state is per connection, so the same one.
    dom = backend.connection.conn.lookupByName("td-stopped")
    await asyncio.get_running_loop().run_in_executor(None, dom.create)
    await _until(lambda: any(i.name == "td-stopped" and i.status is VMStatus.RUNNING for i in seen))
    after = await backend.get("td-stopped")
    assert after.status is VMStatus.RUNNING
    assert after.last_state_change > before.last_state_change, (before, after)


@pytest.mark.asyncio
async def test_several_hosts_route_a_screen_to_the_host_that_has_the_vm(tmp_path: Path) -> None:
    """With several --libvirt-uri, open_screen goes to the VM's own host: its refusal is that
    host's (the test driver has no graphics), not the base class's "no screens here"."""
    require_libvirt()
    from vmws.backends.libvirt.backend import LibvirtBackend
    from vmws.backends.libvirt.hosts import MultiHostBackend

    (tmp_path / "a").mkdir()
    backend = MultiHostBackend(
        [LibvirtBackend(uri=driver_uri(tmp_path / "a"), vm_filter="td-*"), LibvirtBackend(uri="test:///default")]
    )
    await backend.start()
    try:
        with pytest.raises(NoScreen, match="test driver has no graphics"):
            await backend.open_screen("td-running")
        with pytest.raises(VMNotFound):
            await backend.open_screen("no-such-vm")
    finally:
        await backend.close()
