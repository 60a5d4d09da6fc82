"""Fleet descriptions: what VMs a simulation starts with, and the scenario file format.

A scenario file is TOML. Phase 1 knows one table array, ``[[vm]]``::

    # a minimal fleet
    [[vm]]
    name = "web-1"          # required; letters, digits, '.', '_' and '-'
    status = "running"      # optional: running (default), stopped, paused, suspended, error
    memory_mib = 2048       # optional: guest memory, default 2048
    vcpus = 2               # optional: default 2

Every VM gets the Ubuntu 22.04 personality (login ``admin`` / ``admin``, hostname =
VM name). Unknown keys, bad values and duplicate names are errors: ``load_scenario``
raises ``ValueError`` with a message naming the file, the VM and the field, which the
CLI prints as it is. Issue 3 grows this format (templates and counts, personalities,
durations, metrics profiles, a timeline of faults) without breaking these files.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from vmws.backend import VMStatus

__all__ = [
    "Personality",
    "Timings",
    "VMSpec",
    "FleetSpec",
    "load_scenario",
    "parse_scenario",
    "demo_fleet",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_VM_KEYS = frozenset({"name", "status", "memory_mib", "vcpus"})


@dataclass(frozen=True, slots=True)
class Personality:
    """What the guest OS looks like from its serial console."""

    os_name: str = "Ubuntu 22.04.4 LTS"
    kernel: str = "5.15.0-105-generic"
    kernel_build: str = "#115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024"
    username: str = "admin"
    password: str = "admin"
    tty: str = "ttyS0"


@dataclass(frozen=True, slots=True)
class Timings:
    """Nominal durations in clock seconds; the engine jitters each by up to ±20 %."""

    boot: float = 1.5
    shutdown: float = 1.0
    reboot_shutdown: float = 0.4
    save: float = 0.6
    restore: float = 0.4
    pause: float = 0.05
    destroy: float = 0.1
    login_failure_delay: float = 1.0


@dataclass(frozen=True, slots=True)
class VMSpec:
    """One VM as the simulation starts it."""

    name: str
    status: VMStatus = VMStatus.RUNNING
    memory_mib: int = 2048
    vcpus: int = 2
    personality: Personality = field(default_factory=Personality)
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """A whole fleet, in file order (the engine sorts by name where it matters)."""

    vms: tuple[VMSpec, ...]


def _positive_int(value: Any, where: str, field_name: str, upper: int) -> int:
    # bool is an int in Python; a TOML `true` here is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise ValueError(f"{where}: {field_name} must be an integer from 1 to {upper}, got {value!r}")
    return value


def _parse_vm(raw: Any, index: int, source: str) -> VMSpec:
    where = f"{source}: vm #{index + 1}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: each [[vm]] entry must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{where}: name must be 1-63 letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit), got {name!r}"
        )
    where = f"{source}: vm {name!r}"
    unknown = sorted(set(raw) - _VM_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_VM_KEYS))}"
        )
    status_text = raw.get("status", VMStatus.RUNNING.value)
    try:
        status = VMStatus(status_text)
    except ValueError:
        choices = ", ".join(s.value for s in VMStatus)
        raise ValueError(f"{where}: status must be one of {choices}, got {status_text!r}") from None
    memory = _positive_int(raw.get("memory_mib", 2048), where, "memory_mib", 1 << 20)
    vcpus = _positive_int(raw.get("vcpus", 2), where, "vcpus", 512)
    return VMSpec(name=name, status=status, memory_mib=memory, vcpus=vcpus)


def parse_scenario(text: str, source: str = "<scenario>") -> FleetSpec:
    """Parse scenario TOML text; ``ValueError`` names ``source`` and the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"vm"})
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; expected [[vm]] tables")
    raw_vms = data.get("vm")
    if not isinstance(raw_vms, list) or not raw_vms:
        raise ValueError(f"{source}: no VMs: add at least one [[vm]] table with a name")
    vms = tuple(_parse_vm(raw, i, source) for i, raw in enumerate(raw_vms))
    seen: set[str] = set()
    for vm in vms:
        if vm.name in seen:
            raise ValueError(f"{source}: vm {vm.name!r} is defined twice")
        seen.add(vm.name)
    return FleetSpec(vms=vms)


def load_scenario(path: str | os.PathLike[str]) -> FleetSpec:
    """Read and parse a scenario file; any problem is a ``ValueError`` naming it."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ValueError(f"{source}: cannot read scenario file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source}: scenario file is not UTF-8 text") from None
    return parse_scenario(text, source)


def demo_fleet() -> FleetSpec:
    """The built-in demo fleet (``simulator/scenarios/demo.toml``)."""
    text = resources.files("simulator").joinpath("scenarios/demo.toml").read_text("utf-8")
    return parse_scenario(text, "demo.toml")
