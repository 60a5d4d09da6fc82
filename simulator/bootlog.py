"""What a guest prints on its serial console while booting and shutting down.

Each function returns ``(offset, bytes)`` pairs: when, in clock seconds after the
transition began, a line appears. The machine schedules them on its clock; the
kernel timestamps come from the seeded generator, so a seed replays the same log.
"""

from __future__ import annotations

import random

from simulator.fleet import Personality

__all__ = ["boot_log", "shutdown_log"]

_KERNEL_LINES = (
    "Linux version {kernel} (buildd@lcy02-amd64-079) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0) {build}",
    "Command line: BOOT_IMAGE=/vmlinuz-{kernel} root=LABEL=cloudimg-rootfs ro console=ttyS0",
    "x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'",
    "Memory: {memory_k}K available",
    "smpboot: Allowing {vcpus} CPUs, 0 hotplug CPUs",
    "Freeing unused kernel image (initmem) memory: 3240K",
    "EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
    "systemd[1]: systemd 249.11-0ubuntu3.12 running in system mode",
)

_UNITS = (
    "Started Journal Service.",
    "Finished Load Kernel Modules.",
    "Reached target Local File Systems.",
    "Started Network Service.",
    "Started OpenBSD Secure Shell server.",
    "Reached target Multi-User System.",
)

_STOP_UNITS = (
    "Stopped target Multi-User System.",
    "Stopped OpenBSD Secure Shell server.",
    "Stopped Network Service.",
    "Unmounted /boot/efi.",
    "Reached target System Shutdown.",
)


def boot_log(
    personality: Personality, *, memory_mib: int, vcpus: int, duration: float, rng: random.Random
) -> list[tuple[float, bytes]]:
    """Kernel then systemd lines, spread over ``duration``; getty follows at ``duration``."""
    lines: list[bytes] = []
    stamp = 0.0
    for template in _KERNEL_LINES:
        text = template.format(
            kernel=personality.kernel, build=personality.kernel_build, memory_k=memory_mib * 1024 - 180_000, vcpus=vcpus
        )
        lines.append(f"[{stamp:12.6f}] {text}\r\n".encode())
        stamp += rng.uniform(0.05, 0.4)
    lines.extend(f"[  OK  ] {unit}\r\n".encode() for unit in _UNITS)
    # the last line lands a little before getty, as on a real boot
    step = duration * 0.9 / len(lines)
    return [(i * step, line) for i, line in enumerate(lines)]


def shutdown_log(*, uptime: float, duration: float, reboot: bool) -> list[tuple[float, bytes]]:
    """systemd stopping units, then the kernel's last word, the last one at ``duration``."""
    final = "reboot: Restarting system" if reboot else "reboot: Power down"
    lines = [f"[  OK  ] {unit}\r\n".encode() for unit in _STOP_UNITS]
    lines.append(f"[{uptime:12.6f}] {final}\r\n".encode())
    step = duration / len(lines)
    return [((i + 1) * step, line) for i, line in enumerate(lines)]
