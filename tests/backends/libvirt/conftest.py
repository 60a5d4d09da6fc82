"""Tests marked ``libvirt`` hold libvirtd steady (see ``tests.harness.daemon``)."""

from __future__ import annotations

from tests.harness.daemon import libvirtd_steady

__all__ = ["libvirtd_steady"]
