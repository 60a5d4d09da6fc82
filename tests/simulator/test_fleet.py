"""Scenario parsing and the demo fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.fleet import demo_fleet, load_scenario, parse_scenario
from vmws.backend import VMStatus


def test_demo_fleet_has_the_names_others_rely_on() -> None:
    statuses = {vm.name: vm.status for vm in demo_fleet().vms}
    for name in ("my-vm", "web-1", "web-2", "web-3", "web-4", "web-5"):
        assert statuses[name] is VMStatus.RUNNING
    assert statuses["db-1"] is VMStatus.STOPPED
    assert statuses["batch-1"] is VMStatus.PAUSED
    assert statuses["cache-1"] is VMStatus.SUSPENDED
    assert statuses["legacy-1"] is VMStatus.ERROR
    for vm in demo_fleet().vms:
        assert (vm.personality.username, vm.personality.password) == ("admin", "admin")
        assert vm.personality.os_name.startswith("Ubuntu 22.04")


def test_a_minimal_file_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[[vm]]\nname = "a"\n\n[[vm]]\nname = "b"\nstatus = "stopped"\nmemory_mib = 512\nvcpus = 1\n')
    fleet = load_scenario(path)
    a, b = fleet.vms
    assert (a.name, a.status, a.memory_mib, a.vcpus) == ("a", VMStatus.RUNNING, 2048, 2)
    assert (b.name, b.status, b.memory_mib, b.vcpus) == ("b", VMStatus.STOPPED, 512, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[vm]\nname = 'a'", "not valid TOML"),
        ("", "no VMs"),
        ("title = 'x'\n[[vm]]\nname = 'a'", "unknown top-level key(s) title"),
        ("[[vm]]\nstatus = 'running'", "vm #1: name must be"),
        ("[[vm]]\nname = 'bad name!'", "name must be"),
        ("[[vm]]\nname = 'a'\ncolour = 'red'", "vm 'a': unknown field(s) colour"),
        ("[[vm]]\nname = 'a'\nstatus = 'booting'", "vm 'a': status must be one of running, stopped"),
        ("[[vm]]\nname = 'a'\nmemory_mib = true", "memory_mib must be an integer"),
        ("[[vm]]\nname = 'a'\nvcpus = 0", "vcpus must be an integer from 1 to 512"),
        ("[[vm]]\nname = 'a'\n[[vm]]\nname = 'a'", "vm 'a' is defined twice"),
        ("vm = 3", "no VMs"),
        ("vm = [1]", "vm #1: each [[vm]] entry must be a table"),
    ],
)
def test_bad_scenarios_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_scenario(text, "fleet.toml")
    assert str(info.value).startswith("fleet.toml: ")
    assert message in str(info.value)


def test_unreadable_and_binary_files_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_scenario(binary)
