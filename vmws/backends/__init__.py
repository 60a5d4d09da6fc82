"""Named backends: a pure name → ``"module:Class"`` map, imported only when asked for.

As uvicorn names its loops and protocols: nothing here imports a backend, so libvirt-python
is loaded only for ``--backend libvirt``. Each class builds itself from the server's
``Config`` (``Backend.from_config``), so callers never branch on the name.
"""

from __future__ import annotations

import importlib

from vmws.backend import Backend

__all__ = ["BACKENDS", "load_backend_class"]

BACKENDS: dict[str, str] = {
    "sim": "vmws.backends.simulator:SimulatorBackend",
    "libvirt": "vmws.backends.libvirt.backend:LibvirtBackend",
}


def load_backend_class(name: str) -> type[Backend]:
    """Import and return the Backend class registered under ``name``.

    ``ValueError`` for a name not registered; ``ImportError`` when the backend's own
    dependencies are missing (libvirt-python for ``libvirt``).
    """
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{target} is not a Backend class")
    return cls
