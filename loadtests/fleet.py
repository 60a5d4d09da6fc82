"""Simulator fleets sized for a load test: a scenario TOML with N running VMs.

Written as plain ``[[vm]]`` tables, the simulator's base format, so it works whatever
templating the scenario format grows.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["vm_name", "vm_names", "write_fleet"]


def vm_name(index: int, prefix: str = "load") -> str:
    """The name of VM number ``index`` (0-based) of a load fleet: ``load-00001``."""
    return f"{prefix}-{index + 1:05d}"


def vm_names(count: int, prefix: str = "load") -> list[str]:
    return [vm_name(i, prefix) for i in range(count)]


def write_fleet(path: str | os.PathLike[str], count: int, prefix: str = "load") -> Path:
    """Write a scenario file with ``count`` running VMs named by ``vm_name``."""
    if count < 1:
        raise ValueError(f"a fleet needs at least one VM, got {count}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {count} running VMs for a vmws load test (loadtests/fleet.py)\n"]
    for name in vm_names(count, prefix):
        # small guests: memory does not matter to the simulator, only to metrics values
        lines.append(f'\n[[vm]]\nname = "{name}"\nstatus = "running"\nmemory_mib = 1024\nvcpus = 1\n')
    target.write_text("".join(lines), encoding="utf-8")
    return target
