"""Domain XML for the guests the harness boots (pure: a spec in, XML text out).

Every guest gets what the backend and the tests rely on: a serial console on a pty
(``openConsole``), a virtio disk and a virtio NIC on an unbridged tap (so libvirt has
block and interface counters to report), a virtio balloon with a stats period (guest
memory figures), an ISA pvpanic device (a guest kernel panic becomes libvirt's
"crashed"), ACPI (graceful shutdown and reboot press the power button), and a screen:
a VGA card and a VNC server that listens on no address at all (``<listen type='none'/>``,
QEMU's ``-vnc none``), reached only through libvirt's ``openGraphicsFD``, so no guest
opens a TCP port on the host.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Accel", "Disk", "GuestSpec", "domain_xml", "METADATA_NS", "read_metadata"]

METADATA_NS = "http://vmws.invalid/xmlns/guest/1"
ET.register_namespace("vmws", METADATA_NS)


class Accel(str, enum.Enum):
    """How the guest's CPU runs: chosen by probe (auto), hardware (kvm) or emulated (tcg)."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


@dataclass(frozen=True, slots=True)
class Disk:
    path: Path
    format: str = "raw"
    cdrom: bool = False


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """One guest: direct kernel boot when ``kernel`` is set, else it boots from ``disks[0]``."""

    name: str
    accel: Accel
    directory: Path
    image: str
    memory_mib: int = 128
    vcpus: int = 1
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None
    disks: tuple[Disk, ...] = ()
    balloon_period: int = 2
    screen: bool = True  # a VGA card and a VNC server; False: headless (no video at all)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def domain_xml(spec: GuestSpec) -> str:
    """The libvirt domain definition of ``spec``."""
    if spec.accel is Accel.AUTO:
        raise ValueError("resolve the accelerator (harness.accel.resolve) before building the XML")
    domain = ET.Element("domain", type="kvm" if spec.accel is Accel.KVM else "qemu")
    _sub(domain, "name", spec.name)
    metadata = _sub(domain, "metadata")
    guest = ET.SubElement(metadata, f"{{{METADATA_NS}}}guest")
    _sub(guest, f"{{{METADATA_NS}}}image", spec.image)
    _sub(guest, f"{{{METADATA_NS}}}directory", str(spec.directory))
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="pc")
    if spec.kernel is not None:
        _sub(os_, "kernel", str(spec.kernel))
        if spec.initrd is not None:
            _sub(os_, "initrd", str(spec.initrd))
        if spec.cmdline is not None:
            _sub(os_, "cmdline", spec.cmdline)
    else:
        _sub(os_, "boot", dev="hd")
    features = _sub(domain, "features")
    _sub(features, "acpi")
    if spec.accel is Accel.KVM:
        _sub(domain, "cpu", mode="host-passthrough")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        _sub(domain, event, action)
    devices = _sub(domain, "devices")
    for index, disk in enumerate(spec.disks):
        element = _sub(devices, "disk", type="file", device="cdrom" if disk.cdrom else "disk")
        _sub(element, "driver", name="qemu", type=disk.format)
        _sub(element, "source", file=str(disk.path))
        if disk.cdrom:
            _sub(element, "target", dev="sda", bus="sata")
            _sub(element, "readonly")
        else:
            _sub(element, "target", dev=f"vd{chr(ord('a') + index)}", bus="virtio")
    # An unbridged tap: libvirt counts what crosses it; nothing on the host answers.
    nic = _sub(devices, "interface", type="ethernet")
    _sub(nic, "model", type="virtio")
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "panic", model="isa")
    # The screen: VGA (the tiny guest's text console, 720x400) behind a VNC server with
    # no network listener; every client is shared, as the gateway's viewers are.
    if spec.screen:
        graphics = _sub(devices, "graphics", type="vnc", sharePolicy="force-shared")
        _sub(graphics, "listen", type="none")
        _sub(_sub(devices, "video"), "model", type="vga")
    else:
        _sub(_sub(devices, "video"), "model", type="none")  # else libvirt adds a VGA card
    balloon = _sub(devices, "memballoon", model="virtio")
    _sub(balloon, "stats", period=str(spec.balloon_period))
    return ET.tostring(domain, encoding="unicode")


def read_metadata(xml: str) -> dict[str, str]:
    """The harness's own metadata of a domain (``image``, ``directory``); {} if not ours."""
    root = ET.fromstring(xml)
    guest = root.find(f"./metadata/{{{METADATA_NS}}}guest")
    if guest is None:
        return {}
    return {child.tag.split("}", 1)[1]: child.text or "" for child in guest}
