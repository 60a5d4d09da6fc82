"""Define, boot and remove guests from the image recipes (blocking; CLI and test fixtures).

A guest's files (a copy of the kernel and initramfs, its scratch disk, or its qcow2
overlay and cloud-init seed) live in one directory per VM under the storage root,
``/var/lib/libvirt/images/vmws`` for ``qemu:///system`` (QEMU runs as libvirt-qemu
there and cannot read root's home, where the image cache is). The directory is
recorded in the domain's metadata, so ``down`` removes exactly what ``up`` made.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import libvirt

from harness.accel import resolve_accel
from harness.domain import Accel, Disk, GuestSpec, domain_xml, read_metadata
from images.cache import ensure_free_space
from images.errors import ImageError
from images.tiny import DEFAULT_PASSWORD, build_tiny, kernel_cmdline
from vmws.backends.libvirt.aio import quiet_libvirt
from vmws.backends.libvirt.translate import translate
from vmws.errors import BackendUnavailable, CommandFailed

__all__ = ["Guest", "storage_root", "up", "down", "DEFAULT_URI"]

DEFAULT_URI = "qemu:///system"


@dataclass(frozen=True, slots=True)
class Guest:
    name: str
    uri: str
    directory: Path
    accel: Accel
    image: str


def storage_root(uri: str) -> Path:
    """Where per-VM directories go for ``uri`` (``$VMWS_GUEST_DIR`` overrides)."""
    explicit = os.environ.get("VMWS_GUEST_DIR")
    if explicit:
        return Path(explicit)
    if "/system" in uri:
        return Path("/var/lib/libvirt/images/vmws")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "vmws" / "guests"


@contextmanager
def _connection(uri: str) -> Iterator[libvirt.virConnect]:
    quiet_libvirt()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise BackendUnavailable(
            f"cannot connect to libvirt at {uri}: {exc.get_error_message()}; "
            f"run `python -m harness doctor` to see what is missing"
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def _lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise translate(exc, name, "lookup") from None


def _tiny_spec(
    name: str, directory: Path, accel: Accel, memory_mib: int, password: str, disk_mib: int, crash_after: float | None
) -> GuestSpec:
    image = build_tiny(password=password)
    accel = resolve_accel(accel, image.kernel)
    ensure_free_space(
        directory.parent, image.kernel.stat().st_size + image.initrd.stat().st_size + 2**20, f"the files of VM {name}"
    )
    directory.mkdir(parents=True, exist_ok=True)
    kernel, initrd, disk = directory / "vmlinuz", directory / "initrd.img", directory / "disk.raw"
    shutil.copyfile(image.kernel, kernel)
    shutil.copyfile(image.initrd, initrd)
    with open(disk, "wb") as handle:  # sparse: costs nothing until the guest writes
        handle.truncate(disk_mib * 2**20)
    return GuestSpec(
        name=name,
        accel=accel,
        directory=directory,
        image=image.key,
        memory_mib=memory_mib,
        kernel=kernel,
        initrd=initrd,
        cmdline=kernel_cmdline(name, crash_after=crash_after),
        disks=(Disk(disk),),
    )


def up(
    name: str,
    *,
    image: str = "tiny",
    accel: Accel = Accel.AUTO,
    uri: str = DEFAULT_URI,
    memory_mib: int = 128,
    password: str = DEFAULT_PASSWORD,
    disk_mib: int = 64,
    crash_after: float | None = None,
    replace: bool = False,
    start: bool = True,
    screen: bool = True,
) -> Guest:
    """Define guest ``name`` from ``image`` and (unless ``start=False``) boot it.

    ``screen=False`` leaves out the VGA card and the VNC server (a headless guest).
    """
    kernel_cmdline(name)  # validates the name before anything is made
    directory = storage_root(uri) / name
    with _connection(uri) as conn:
        if _lookup(conn, name) is not None:
            if not replace:
                raise CommandFailed(
                    f"VM {name!r} already exists at {uri}; remove it with "
                    f"`python -m harness down {name}` (or pass --replace)"
                )
            down(name, uri=uri)
        if image == "tiny":
            spec = _tiny_spec(name, directory, accel, memory_mib, password, disk_mib, crash_after)
        else:
            from images.cloud import prepare_cloud_guest

            spec = prepare_cloud_guest(name, image, directory, accel=accel, memory_mib=memory_mib, password=password)
        spec = dataclasses.replace(spec, screen=screen)
        try:
            # VALIDATE: libvirt checks the XML against its own schema (domain.rng) and
            # names what is wrong, instead of dropping what it does not know.
            dom = conn.defineXMLFlags(domain_xml(spec), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            if start:
                dom.create()
        except libvirt.libvirtError as exc:
            raise translate(exc, name, "boot") from None
    return Guest(name, uri, directory, spec.accel, spec.image)


def down(name: str, *, uri: str = DEFAULT_URI) -> bool:
    """Stop and undefine ``name`` and remove its files; False if there was no such VM."""
    directory = storage_root(uri) / name
    with _connection(uri) as conn:
        dom = _lookup(conn, name)
        if dom is None:
            if directory.is_dir():
                shutil.rmtree(directory)
            return False
        try:
            recorded = read_metadata(dom.XMLDesc(0)).get("directory")
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except libvirt.libvirtError as exc:
            raise translate(exc, name, "removal") from None
    target = Path(recorded) if recorded else directory
    # Only ever delete a directory the harness made: one under a storage root, named after the VM.
    if target.name == name and target.is_dir():
        shutil.rmtree(target)
    return True


def check_image_name(image: str) -> None:
    if image != "tiny":
        from images.cloud import MANIFEST

        if image not in MANIFEST:
            known = ", ".join(["tiny", *sorted(MANIFEST)])
            raise ImageError(f"unknown image {image!r}; choose one of: {known}")
