from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.fleet import vm_name, vm_names, write_fleet
from vmws.backend import VMStatus
from vmws.backends.simulator import SimulatorBackend


@pytest.mark.asyncio
async def test_written_fleet_serves_every_vm_running(tmp_path: Path) -> None:
    backend = SimulatorBackend(scenario=write_fleet(tmp_path / "fleet.toml", 250))
    await backend.start()
    try:
        vms = await backend.list()
    finally:
        await backend.close()
    assert [vm.name for vm in vms] == vm_names(250)
    assert {vm.status for vm in vms} == {VMStatus.RUNNING}


def test_names_sort_in_index_order() -> None:
    names = vm_names(12000)
    assert names == sorted(names)
    assert vm_name(0) == "load-00001" and vm_name(9, "web") == "web-00010"


def test_empty_fleet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_fleet(tmp_path / "fleet.toml", 0)
