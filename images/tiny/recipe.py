"""Build the ``tiny`` image from distribution packages, in seconds, cached by content hash.

Inputs: the newest kernel in ``/boot`` with its modules (Debian's ``linux-image-amd64``),
``/bin/busybox`` from ``busybox-static``, and the guest files under ``rootfs/``. Output: a
``vmlinuz`` + ``initrd.img`` pair whose initramfs runs busybox init, loads the virtio
disk, NIC and balloon drivers and the ACPI power button, and offers a getty login on
``ttyS0`` and on the VGA text console ``tty1`` (user ``admin``; the VNC screen shows tty1). The hostname comes from the kernel command line
(``vmws.hostname=``) so one cached image serves every VM name.

The cache key is a hash of every input, so a kernel upgrade or a new password gives a
new image and an unchanged host reuses the old one.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from images.cache import cached_dir
from images.cpio import Entry, EntryKind, write_newc
from images.errors import ImageError
from images.passwords import sha512_crypt

__all__ = [
    "DEFAULT_PASSWORD",
    "GUEST_MODULES",
    "TinyImage",
    "KernelChoice",
    "find_kernel",
    "module_closure",
    "build_tiny",
    "kernel_cmdline",
]

# Bump when the recipe changes in a way the inputs do not show.
RECIPE_VERSION = "1"
DEFAULT_PASSWORD = "admin"
LOGIN_USER = "admin"
# Drivers the guest needs; their dependencies are added from modules.dep.
GUEST_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_balloon",
    "button",
    "evdev",
    "pvpanic_mmio",
)
ROOTFS = Path(__file__).with_name("rootfs")
_INSTALL_HINT = "install it with `apt-get install {pkg}` (or run scripts/install-libvirt.sh as root)"


@dataclass(frozen=True, slots=True)
class KernelChoice:
    version: str
    vmlinuz: Path
    modules_dir: Path


@dataclass(frozen=True, slots=True)
class TinyImage:
    """A built image: boot it with ``kernel``, ``initrd`` and ``kernel_cmdline(name)``."""

    key: str
    kernel: Path
    initrd: Path
    kernel_version: str


def kernel_cmdline(hostname: str, *, crash_after: float | None = None) -> str:
    """The kernel command line for a guest called ``hostname``.

    ``crash_after`` makes the guest panic that many seconds after boot (a VM that ends
    in libvirt's "crashed" state, for tests of the ``error`` status).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", hostname):
        raise ImageError(f"{hostname!r} cannot be a hostname: use letters, digits, dots and dashes")
    # quiet: the serial line is slow under TCG, and the boot log is not what users read.
    # Kernel messages go to the VGA console (tty0, the VNC screen) and the serial line;
    # the last ``console=`` is /dev/console, so init, rc and the serial login stay on ttyS0.
    crash = f" vmws.crash_after={crash_after:g}" if crash_after is not None else ""
    return f"console=tty0 console=ttyS0,115200 quiet panic=-1 vmws.hostname={hostname}{crash}"


def _version_key(version: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", version))


def find_kernel(boot_dir: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")) -> KernelChoice:
    """The newest kernel in ``boot_dir`` whose modules are installed."""
    choices = []
    for vmlinuz in boot_dir.glob("vmlinuz-*"):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        modules_dir = modules_root / version
        if (modules_dir / "modules.dep").is_file():
            choices.append(KernelChoice(version, vmlinuz, modules_dir))
    if not choices:
        raise ImageError(
            f"no kernel with modules found (looked for {boot_dir}/vmlinuz-* with "
            f"{modules_root}/VERSION/modules.dep); " + _INSTALL_HINT.format(pkg="linux-image-amd64")
        )
    return max(choices, key=lambda c: _version_key(c.version))


def module_closure(modules_dir: Path, wanted: tuple[str, ...] = GUEST_MODULES) -> list[Path]:
    """Module files for ``wanted`` and their dependencies, dependencies first."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        name = Path(path).name.split(".ko")[0].replace("-", "_")
        deps[name] = (path, rest.split())
    by_path = {path: name for name, (path, _) in deps.items()}
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        path, requires = deps[name]
        for dep in requires:
            visit(by_path[dep])
        ordered.append(modules_dir / path)

    for name in wanted:
        if name not in deps:
            raise ImageError(
                f"kernel module {name} is not in {modules_dir}; the tiny image needs a "
                f"kernel with virtio drivers as modules, like Debian's linux-image-amd64"
            )
        visit(name)
    return ordered


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if not path.name.endswith(".ko"):
        raise ImageError(f"cannot unpack kernel module {path}: only .ko and .ko.xz are handled")
    return data


def _is_static_elf(data: bytes) -> bool:
    """True for a 64-bit ELF without a program interpreter (statically linked)."""
    if data[:5] != b"\x7fELF\x02":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        (p_type,) = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def _busybox(path: Path) -> tuple[bytes, list[str]]:
    if not path.is_file():
        raise ImageError(f"{path} is missing; " + _INSTALL_HINT.format(pkg="busybox-static"))
    data = path.read_bytes()
    if not _is_static_elf(data):
        raise ImageError(
            f"{path} is not statically linked, so it cannot run alone in the initramfs; "
            + _INSTALL_HINT.format(pkg="busybox-static")
        )
    listing = subprocess.run([str(path), "--list-full"], capture_output=True, text=True, check=True)
    return data, sorted(set(listing.stdout.split()))


def _password_hash(busybox: Path, password: str) -> str:
    return sha512_crypt(password, purpose="vmws-tiny", busybox=busybox)


def _rootfs_entries() -> Iterator[Entry]:
    for path in sorted(ROOTFS.rglob("*")):
        rel = path.relative_to(ROOTFS).as_posix()
        if path.is_dir():
            yield Entry(rel, EntryKind.DIRECTORY, 0o755)
        else:
            data = path.read_bytes()
            # Scripts by their shebang, not the file mode: an installed package may not
            # keep execute bits, and a non-executable /etc/rc would leave init stuck.
            mode = 0o755 if data.startswith(b"#!") else 0o644
            yield Entry(rel, EntryKind.FILE, mode, data)


def _initramfs(busybox_data: bytes, applets: list[str], modules: list[tuple[str, bytes]], password_hash: str) -> bytes:
    entries: list[Entry] = [
        Entry(d, EntryKind.DIRECTORY, 0o755)
        for d in (
            "bin",
            "sbin",
            "usr",
            "usr/bin",
            "usr/sbin",
            "etc",
            "proc",
            "sys",
            "dev",
            "run",
            "lib",
            "lib/modules",
            "home",
        )
    ]
    entries += [
        Entry("root", EntryKind.DIRECTORY, 0o700),
        Entry("tmp", EntryKind.DIRECTORY, 0o1777),
        Entry("home/admin", EntryKind.DIRECTORY, 0o755, uid=1000, gid=1000),
        # The kernel needs a console before devtmpfs is mounted.
        Entry("dev/console", EntryKind.CHAR_DEVICE, 0o600, rdev_major=5, rdev_minor=1),
        Entry("bin/busybox", EntryKind.FILE, 0o755, busybox_data),
        Entry("init", EntryKind.SYMLINK, 0o777, b"/bin/busybox"),
    ]
    for applet in applets:
        rel = applet.lstrip("/")
        if rel != "bin/busybox":
            entries.append(Entry(rel, EntryKind.SYMLINK, 0o777, b"/bin/busybox"))
    entries += list(_rootfs_entries())
    entries += [Entry(f"lib/modules/{name}", EntryKind.FILE, 0o644, data) for name, data in modules]
    entries += [
        Entry("etc/modules", EntryKind.FILE, 0o644, "".join(f"{n}\n" for n, _ in modules).encode()),
        Entry(
            "etc/passwd",
            EntryKind.FILE,
            0o644,
            f"root:x:0:0:root:/root:/bin/sh\n{LOGIN_USER}:x:1000:1000:{LOGIN_USER}:"
            f"/home/{LOGIN_USER}:/bin/sh\n".encode(),
        ),
        Entry(
            "etc/shadow",
            EntryKind.FILE,
            0o600,
            f"root:*:19000:0:99999:7:::\n{LOGIN_USER}:{password_hash}:19000:0:99999:7:::\n".encode(),
        ),
    ]
    return write_newc(entries)


def build_tiny(
    *,
    password: str = DEFAULT_PASSWORD,
    boot_dir: Path = Path("/boot"),
    modules_root: Path = Path("/lib/modules"),
    busybox: Path = Path("/bin/busybox"),
    cache: Path | None = None,
) -> TinyImage:
    """Build (or reuse from the cache) the tiny image with login ``admin``/``password``."""
    kernel = find_kernel(boot_dir, modules_root)
    try:
        kernel_data = kernel.vmlinuz.read_bytes()
    except PermissionError:
        raise ImageError(f"cannot read {kernel.vmlinuz}: build the image as root") from None
    busybox_data, applets = _busybox(busybox)
    modules = [(p.name.removesuffix(".xz"), _module_bytes(p)) for p in module_closure(kernel.modules_dir)]
    password_hash = _password_hash(busybox, password)

    digest = hashlib.sha256(f"tiny-recipe-{RECIPE_VERSION}\0".encode())
    for part in (kernel_data, busybox_data, "\n".join(applets).encode(), password_hash.encode()):
        digest.update(hashlib.sha256(part).digest())
    for name, data in modules:
        digest.update(name.encode() + hashlib.sha256(data).digest())
    for entry in _rootfs_entries():
        digest.update(f"{entry.path}:{entry.mode:o}".encode() + hashlib.sha256(entry.data).digest())
    key = f"tiny-{digest.hexdigest()[:24]}"

    def build(out: Path) -> None:
        (out / "vmlinuz").write_bytes(kernel_data)
        (out / "initrd.img").write_bytes(_initramfs(busybox_data, applets, modules, password_hash))
        (out / "KERNEL_VERSION").write_text(kernel.version + "\n")

    needed = 2 * (len(kernel_data) + len(busybox_data) + sum(len(d) for _, d in modules)) + 2**20
    directory = cached_dir(key, build, root=cache, needed=needed, what="the tiny image")
    return TinyImage(key, directory / "vmlinuz", directory / "initrd.img", kernel.version)
