"""Domain XML: the devices the backend relies on, metadata round trip, accel types."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.domain import Accel, Disk, GuestSpec, domain_xml, read_metadata
from tests.harness.daemon import LIBVIRTD
from tests.harness.hosts import LIBVIRT_GROUP, require_qemu, vm_prefix

URI = "qemu:///system"
pytestmark = LIBVIRT_GROUP  # the schema check talks to libvirtd, which a fault test restarts


def _spec(**changes: object) -> GuestSpec:
    base = dict(
        name="web-1",
        accel=Accel.TCG,
        directory=Path("/srv/web-1"),
        image="tiny-abc",
        kernel=Path("/srv/web-1/vmlinuz"),
        initrd=Path("/srv/web-1/initrd.img"),
        cmdline="console=ttyS0 vmws.hostname=web-1",
        disks=(Disk(Path("/srv/web-1/disk.raw")),),
    )
    base.update(changes)
    return GuestSpec(**base)  # type: ignore[arg-type]


def test_tiny_guest_has_console_disk_nic_balloon_panic_and_acpi() -> None:
    root = ET.fromstring(domain_xml(_spec()))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "web-1"
    assert root.findtext("os/kernel") == "/srv/web-1/vmlinuz"
    assert root.findtext("os/cmdline") == "console=ttyS0 vmws.hostname=web-1"
    assert root.find("features/acpi") is not None
    assert root.find("devices/console[@type='pty']/target").get("type") == "serial"
    disk = root.find("devices/disk")
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert root.find("devices/interface[@type='ethernet']/model").get("type") == "virtio"
    assert root.find("devices/memballoon/stats").get("period") == "2"
    assert root.find("devices/panic").get("model") == "isa"
    assert root.findtext("on_crash") == "destroy"


def test_screen_is_vnc_on_no_network_address_with_a_vga_card() -> None:
    root = ET.fromstring(domain_xml(_spec()))
    graphics = root.findall("devices/graphics")
    assert len(graphics) == 1 and graphics[0].get("type") == "vnc"
    # No TCP port, no address: reached only through libvirt's openGraphicsFD.
    assert [listen.attrib for listen in graphics[0].findall("listen")] == [{"type": "none"}]
    assert graphics[0].get("port") is None and graphics[0].get("listen") is None
    assert graphics[0].get("autoport") is None and graphics[0].get("websocket") is None
    assert graphics[0].get("sharePolicy") == "force-shared"
    assert root.find("devices/video/model").get("type") == "vga"


def test_a_headless_guest_has_no_vnc_and_no_video_card() -> None:
    root = ET.fromstring(domain_xml(_spec(screen=False)))
    assert root.find("devices/graphics") is None
    # An explicit none: without any <video>, libvirt would add a VGA card of its own.
    assert [video.find("model").attrib for video in root.findall("devices/video")] == [{"type": "none"}]


def test_kvm_guests_get_kvm_type_and_host_cpu() -> None:
    root = ET.fromstring(domain_xml(_spec(accel=Accel.KVM)))
    assert root.get("type") == "kvm"
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_auto_must_be_resolved_first() -> None:
    with pytest.raises(ValueError):
        domain_xml(_spec(accel=Accel.AUTO))


def test_cloud_guest_boots_from_disk_with_a_seed_cdrom() -> None:
    spec = _spec(
        kernel=None,
        initrd=None,
        cmdline=None,
        disks=(Disk(Path("/d/disk.qcow2"), "qcow2"), Disk(Path("/d/seed.iso"), cdrom=True)),
    )
    root = ET.fromstring(domain_xml(spec))
    assert root.find("os/kernel") is None and root.find("os/boot").get("dev") == "hd"
    disks = root.findall("devices/disk")
    assert disks[0].find("driver").get("type") == "qcow2"
    assert disks[1].get("device") == "cdrom" and disks[1].find("readonly") is not None


def test_metadata_round_trip_and_foreign_domains() -> None:
    assert read_metadata(domain_xml(_spec())) == {"image": "tiny-abc", "directory": "/srv/web-1"}
    assert read_metadata("<domain><name>other</name></domain>") == {}


def test_names_are_escaped() -> None:
    root = ET.fromstring(domain_xml(_spec(cmdline="a<b & c")))
    assert root.findtext("os/cmdline") == "a<b & c"


@pytest.mark.libvirt
@pytest.mark.parametrize("accel", [Accel.TCG, Accel.KVM])
@pytest.mark.parametrize("boot", ["kernel", "disk", "headless"])
def test_libvirt_accepts_the_xml_against_its_schema(tmp_path: Path, accel: Accel, boot: str) -> None:
    # `virsh define --validate` checks the XML against libvirt's own domain.rng (the
    # harness defines with VIR_DOMAIN_DEFINE_VALIDATE too); the domain is never started.
    require_qemu(URI)
    name = f"{vm_prefix('xml')}{accel.value}-{boot}"
    spec = _spec(name=name, accel=accel, directory=tmp_path, screen=boot != "headless")
    if boot == "disk":
        spec = _spec(
            name=name, accel=accel, kernel=None, initrd=None, cmdline=None,
            disks=(Disk(tmp_path / "disk.qcow2", "qcow2"), Disk(tmp_path / "seed.iso", cdrom=True)),
        )  # fmt: skip
    path = tmp_path / "domain.xml"
    path.write_text(domain_xml(spec))
    with LIBVIRTD.steady():
        defined = subprocess.run(
            ["virsh", "-c", URI, "define", str(path), "--validate"], capture_output=True, text=True, timeout=60
        )
        subprocess.run(["virsh", "-c", URI, "undefine", name], capture_output=True, timeout=60)
    assert defined.returncode == 0, defined.stderr
