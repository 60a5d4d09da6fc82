"""``python -m harness doctor``: what this host lacks for real guests, and how to fix it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Check", "run_checks", "report"]

_SCRIPT = "sudo bash scripts/install-libvirt.sh"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _binary(name: str, package: str) -> Check:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)
    if path:
        return Check(name, True, path)
    return Check(name, False, "not found", f"apt-get install {package} (or {_SCRIPT})")


def _running(daemon: str) -> Check:
    found = subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0
    if found:
        return Check(f"{daemon} running", True, "yes")
    return Check(
        f"{daemon} running",
        False,
        "not running",
        f"start it: `{daemon} -d` as root (or `systemctl start {daemon}`), or {_SCRIPT}",
    )


def _connection(uri: str) -> Check:
    try:
        import libvirt
    except ImportError:
        return Check(
            "libvirt-python",
            False,
            "not importable",
            "pip install 'vmws[libvirt]' (builds against libvirt-dev with pkg-config), or " + _SCRIPT,
        )
    from vmws.backends.libvirt.aio import quiet_libvirt

    quiet_libvirt()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        return Check(
            f"connect {uri}",
            False,
            exc.get_error_message() or str(exc),
            "start libvirtd (see above); for qemu:///system run as root or join the libvirt group",
        )
    try:
        version = conn.getLibVersion()
        release = f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"
        return Check(f"connect {uri}", True, f"libvirt {release}")
    finally:
        conn.close()


def _tiny_inputs() -> Iterator[Check]:
    from images.errors import ImageError
    from images.tiny.recipe import find_kernel

    try:
        kernel = find_kernel()
        yield Check("kernel for the tiny image", True, str(kernel.vmlinuz))
    except ImageError as exc:
        yield Check("kernel for the tiny image", False, "none", str(exc))
    busybox = Path("/bin/busybox")
    static = busybox.is_file() and b"/lib64/ld-linux" not in busybox.read_bytes()[:4096]
    yield Check(
        "busybox-static",
        static,
        str(busybox) if static else "missing or dynamically linked",
        "apt-get install busybox-static",
    )


def _space(path: Path, what: str, needed: int) -> Check:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    ok = free >= needed
    return Check(
        f"disk space for {what}",
        ok,
        f"{free / 2**30:.1f} GiB free at {probe}",
        "" if ok else f"free at least {needed / 2**30:.1f} GiB there, or set VMWS_IMAGE_CACHE / VMWS_GUEST_DIR",
    )


def _kvm(probe: bool) -> Check:
    if not os.path.exists("/dev/kvm"):
        return Check(
            "KVM",
            False,
            "/dev/kvm missing: guests run under TCG (slower, works)",
            "enable virtualisation in the BIOS / load kvm_intel or kvm_amd",
            required=False,
        )
    if not probe:
        return Check(
            "KVM", True, "/dev/kvm present (not probed; drop --no-kvm-probe to boot a test kernel)", required=False
        )
    from harness.accel import probe_kvm
    from images.errors import ImageError
    from images.tiny.recipe import find_kernel

    try:
        kernel = find_kernel().vmlinuz
    except ImageError:
        return Check("KVM", False, "cannot probe without a kernel", "install linux-image-amd64", required=False)
    result = probe_kvm(kernel)
    return Check(
        "KVM",
        result.usable,
        result.reason + ("" if result.usable else "; --accel auto picks TCG"),
        "" if result.usable else "nothing to do for TCG; for KVM use a host with working nested virt",
        required=False,
    )


def run_checks(uri: str = "qemu:///system", *, probe_kvm: bool = True) -> list[Check]:
    from harness.guest import storage_root
    from images.cache import cache_root

    checks = [
        _binary("qemu-system-x86_64", "qemu-system-x86"),
        _binary("qemu-img", "qemu-utils"),
        _binary("virsh", "libvirt-clients"),
        _binary("libvirtd", "libvirt-daemon-system"),
        _binary("virtlogd", "libvirt-daemon-system"),
    ]
    if uri.startswith("qemu:///"):
        checks += [_running("virtlogd"), _running("libvirtd")]
    checks.append(_connection(uri))
    checks += list(_tiny_inputs())
    tun = os.path.exists("/dev/net/tun")
    checks.append(
        Check("/dev/net/tun", tun, "present" if tun else "missing", "modprobe tun (guests get an unbridged tap NIC)")
    )
    checks.append(_space(cache_root(), "the image cache", 256 * 2**20))
    checks.append(_space(storage_root(uri), "guest disks", 512 * 2**20))
    checks.append(_kvm(probe_kvm))
    return checks


def report(checks: list[Check]) -> tuple[str, bool]:
    """The printed report and whether every required check passed."""
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        mark = "ok " if check.ok else ("MISSING" if check.required else "note")
        lines.append(f"{mark:7} {check.name:{width}}  {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"{'':7} {'':{width}}  fix: {check.fix}")
    healthy = all(c.ok for c in checks if c.required)
    lines.append("ready to boot guests" if healthy else "not ready: fix the MISSING lines above")
    return "\n".join(lines), healthy
