"""The backend registry: a pure name → import string map; each class builds itself
from the server's ``Config``, so ``vmws serve`` never branches on the name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness.hosts import require_libvirt
from vmws.backend import Backend
from vmws.backends import BACKENDS, load_backend_class
from vmws.backends.simulator import SimulatorBackend
from vmws.cli import make_backend
from vmws.config import Config


def test_the_registry_holds_import_strings_only() -> None:
    assert set(BACKENDS) == {"sim", "libvirt"}
    for target in BACKENDS.values():
        module, sep, attr = target.partition(":")
        assert sep and module.startswith("vmws.backends.") and attr.isidentifier(), target


def test_importing_the_registry_loads_no_backend() -> None:
    code = "import sys, vmws.backends, vmws.cli; print(sorted(m for m in sys.modules if 'libvirt' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_an_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'xen'; choose one of: libvirt, sim"):
        load_backend_class("xen")


def test_the_simulator_is_built_from_its_options() -> None:
    backend = make_backend(Config(backend="sim", seed=3, speed=4.0))
    assert type(backend) is SimulatorBackend
    assert (backend._seed, backend._speed) == (3, 4.0)


def test_libvirt_is_built_from_its_options() -> None:
    require_libvirt()
    from vmws.backends.libvirt.backend import LibvirtBackend

    cls = load_backend_class("libvirt")
    assert cls is LibvirtBackend and issubclass(cls, Backend)
    backend = make_backend(Config(backend="libvirt", libvirt_uri="test:///default", vm_filter="web-*"))
    assert isinstance(backend, LibvirtBackend)
    assert (backend.uri, backend.vm_filter) == ("test:///default", "web-*")


def test_a_backend_made_only_in_code_says_it_cannot_be_built_from_options() -> None:
    class Fake(Backend):
        async def list(self):  # type: ignore[no-untyped-def]
            return []

    with pytest.raises(NotImplementedError, match="Fake cannot be built"):
        Fake.from_config(Config())
