"""The backend contract against libvirt's ``test:///`` driver (no console, no screen there).

Each test opens a fresh driver from its own XML file (``test:///PATH``), so tests
share no state and run under xdist. The file holds a running VM with a disk and a NIC,
a stopped one, and one in the crashed state for the ``error`` column.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.contract.suite import BackendContract, ContractTimeouts
from tests.harness.hosts import LIBVIRT_GROUP, require_libvirt
from vmws.backend import Capability

pytestmark = [pytest.mark.libvirt, LIBVIRT_GROUP]

NODE_XML = """\
<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>td-running</name><memory unit='MiB'>128</memory><vcpu>2</vcpu><os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
      <interface type='ethernet'><target dev='td0'/><model type='virtio'/></interface>
    </devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>td-stopped</name><memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>td-crashed</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <test:runstate>6</test:runstate>
  </domain>
</node>
"""


def driver_uri(tmp_path: Path) -> str:
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(disk=tmp_path / "disk.img"))
    return f"test://{node}"


class TestLibvirtTestDriverContract(BackendContract):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[object]:
        require_libvirt()
        from vmws.backends.libvirt.backend import LibvirtBackend

        backend = LibvirtBackend(uri=driver_uri(tmp_path), stop_timeout=5.0, restart_timeout=5.0)
        assert Capability.CONSOLE not in backend.capabilities
        await backend.start()
        yield backend
        await backend.close()

    @pytest.fixture
    def running_vm(self) -> str:
        return "td-running"

    @pytest.fixture
    def stopped_vm(self) -> str:
        return "td-stopped"

    @pytest.fixture
    def error_vm(self) -> str | None:
        return "td-crashed"

    @pytest.fixture
    def screens(self) -> bool:
        return False  # the test driver cannot open graphics: open_screen is NoScreen

    @pytest.fixture
    def timeouts(self) -> ContractTimeouts:
        return ContractTimeouts(action=10.0, boot=10.0, console=5.0)
