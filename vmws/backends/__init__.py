"""Named backends, imported lazily (libvirt-python is only imported when asked for)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BACKENDS", "load_backend_class"]

BACKENDS: dict[str, str] = {
    "sim": "vmws.backends.simulator:SimulatorBackend",
    "libvirt": "harness.backend:LibvirtBackend",
}


def load_backend_class(name: str) -> Any:
    """Import and return the Backend class registered under ``name``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
