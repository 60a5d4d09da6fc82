"""Is KVM usable here? Decided by booting a kernel, not by looking at ``/dev/kvm``.

On some hosts (nested virtualisation without the needed CPU features, this CI among
them) ``/dev/kvm`` opens and trivial code runs, yet a Linux guest hangs at boot. So the
probe boots the tiny image's kernel under ``-accel kvm`` with no root file system: a
working KVM panics ("VFS: Unable to mount root fs") and exits within a second or two;
a broken one prints nothing and is killed at the deadline. The answer is remembered
on disk per host, QEMU binary and kernel, so only the first boot pays for the probe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.domain import Accel

__all__ = ["KvmProbe", "probe_kvm", "probe_kvm_cached", "resolve_accel", "QEMU_BINARY"]

QEMU_BINARY = "qemu-system-x86_64"
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class KvmProbe:
    usable: bool
    reason: str


@functools.cache
def probe_kvm(kernel: Path, timeout: float = PROBE_TIMEOUT) -> KvmProbe:
    """Boot ``kernel`` under KVM until its panic; usable if it gets there in time."""
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist (no hardware virtualisation, or the kvm module is not loaded)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not readable and writable by this user (add it to the kvm group)")
    qemu = shutil.which(QEMU_BINARY)
    if qemu is None:
        return KvmProbe(False, f"{QEMU_BINARY} is not installed (apt-get install qemu-system-x86)")
    command = [
        qemu,
        "-accel",
        "kvm",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1",
    ]
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return KvmProbe(False, f"a Linux guest under KVM did not finish booting within {timeout:g} s (KVM hangs here)")
    output = result.stdout.decode(errors="replace")
    if "Kernel panic" in output or "Linux version" in output:
        return KvmProbe(True, "a Linux guest boots under KVM")
    detail = result.stderr.decode(errors="replace").strip().splitlines()
    return KvmProbe(False, f"QEMU could not run a guest under KVM: {detail[-1] if detail else 'no output'}")


def _probe_key(kernel: Path) -> str:
    qemu = shutil.which(QEMU_BINARY) or ""
    parts = [
        os.uname().release,
        qemu,
        str(os.stat(qemu).st_mtime_ns) if qemu else "",
        str(kernel),
        str(kernel.stat().st_size),
    ]
    try:
        parts.append(hashlib.sha256(Path("/proc/cpuinfo").read_bytes().split(b"\n\n")[0]).hexdigest())
    except OSError:
        pass
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def probe_kvm_cached(kernel: Path) -> KvmProbe:
    """``probe_kvm``, remembered on disk for this host, QEMU and kernel (it can cost 10 s)."""
    from images.cache import cache_root

    record = cache_root().parent / "kvm-probe.json"
    key = _probe_key(kernel)
    try:
        known = json.loads(record.read_text())
        if known.get("key") == key:
            return KvmProbe(bool(known["usable"]), str(known["reason"]) + " (cached)")
    except (OSError, ValueError, KeyError):
        pass
    result = probe_kvm(kernel)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"key": key, "usable": result.usable, "reason": result.reason}))
    except OSError:
        pass  # a read-only cache only costs the next probe
    return result


def resolve_accel(accel: Accel, kernel: Path | None) -> Accel:
    """``accel``, with ``auto`` turned into KVM where the probe says it works, else TCG.

    ``VMWS_ACCEL=kvm|tcg`` in the environment overrides ``auto`` (CI pins it to skip
    the probe's timeout where KVM is known to hang).
    """
    if accel is not Accel.AUTO:
        return accel
    forced = os.environ.get("VMWS_ACCEL", "").strip().lower()
    if forced in (Accel.KVM.value, Accel.TCG.value):
        return Accel(forced)
    if kernel is None:
        return Accel.TCG
    return Accel.KVM if probe_kvm_cached(kernel).usable else Accel.TCG
