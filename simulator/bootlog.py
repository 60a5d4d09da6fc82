"""What a guest prints on its serial console while booting, stopping, hanging or crashing.

The timed functions return ``(offset, bytes)`` pairs: when, in clock seconds after the
transition began, a line appears; the machine schedules them on its clock. Kernel
timestamps are monotonic ``[    1.234567]`` stamps drawn from a generator seeded with
the boot's own seed, so a boot replays the same log and ``dmesg`` can reprint it.
systemd's status words are coloured as on a real console, with well-formed SGR
sequences only (``ESC [ … m``): the output is safe for any terminal.
"""

from __future__ import annotations

import random

from simulator.fleet import Init, Personality

__all__ = [
    "kernel_lines",
    "boot_log",
    "shutdown_log",
    "start_job_line",
    "stop_job_line",
    "panic_lines",
    "systemd_time",
]

_OK = "[\x1b[0;32m  OK  \x1b[0m]"
_SPIN = "[\x1b[0;31m*\x1b[0;1;31m*\x1b[0m\x1b[0;31m*  \x1b[0m]"

_KERNEL_LINES = (
    "Linux version {kernel} (buildd@lcy02-amd64-079) (gcc (GCC) 12.2.0) {build}",
    "Command line: BOOT_IMAGE=/vmlinuz-{kernel} root=LABEL=cloudimg-rootfs ro console=tty1 console={tty}",
    "x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'",
    "BIOS-provided physical RAM map:",
    "DMI: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
    "Hypervisor detected: KVM",
    "Memory: {memory_k}K/{total_k}K available",
    "smpboot: Allowing {vcpus} CPUs, 0 hotplug CPUs",
    "Serial: 8250/16550 driver, 32 ports, IRQ sharing enabled",
    "00:04: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A",
    "virtio_blk virtio2: [vda] {disk_blocks} 512-byte logical blocks (10.7 GB/10.0 GiB)",
    "Freeing unused kernel image (initmem) memory: 3240K",
    "Run /init as init process",
    "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.",
)

_SYSTEMD_INIT = "systemd[1]: systemd 249.11-0ubuntu3.12 running in system mode (+PAM +AUDIT +SELINUX)"
_OPENRC_INIT = "OpenRC 0.52.1 is starting up Linux {kernel} (x86_64)"

_UNITS = (
    "Started Journal Service.",
    "Finished Load Kernel Modules.",
    "Reached target Local File Systems.",
    "Started Network Service.",
    "Reached target Network is Online.",
    "Started OpenBSD Secure Shell server.",
    "Reached target Multi-User System.",
)

_OPENRC_SERVICES = ("devfs", "dmesg", "hwclock", "modules", "networking", "sshd", "crond")

_STOP_UNITS = (
    "Stopped target Multi-User System.",
    "Stopped OpenBSD Secure Shell server.",
    "Stopped Network Service.",
    "Unmounted /boot/efi.",
    "Reached target System Shutdown.",
)


def kernel_lines(personality: Personality, *, memory_mib: int, vcpus: int, seed: int) -> list[str]:
    """The kernel's messages of one boot, timestamped, without line endings."""
    rng = random.Random(seed)
    lines: list[str] = []
    stamp = 0.0
    for template in _KERNEL_LINES:
        text = template.format(
            kernel=personality.kernel,
            build=personality.kernel_build,
            tty=personality.tty,
            memory_k=max(1, memory_mib * 1024 - 180_000),
            total_k=memory_mib * 1024,
            vcpus=vcpus,
            disk_blocks=20_971_520,
        )
        lines.append(f"[{stamp:12.6f}] {text}")
        stamp += rng.uniform(0.01, 0.3)
    init = _SYSTEMD_INIT if personality.init is Init.SYSTEMD else _OPENRC_INIT.format(kernel=personality.kernel)
    lines.append(f"[{stamp:12.6f}] {init}")
    return lines


def boot_log(
    personality: Personality, *, memory_mib: int, vcpus: int, duration: float, seed: int, stuck: bool = False
) -> list[tuple[float, bytes]]:
    """Kernel then init lines spread over ``duration``; getty follows at ``duration``.

    ``stuck``: init stops half-way (the caller then prints ``start_job_line``s)."""
    lines = [
        (text + "\r\n").encode() for text in kernel_lines(personality, memory_mib=memory_mib, vcpus=vcpus, seed=seed)
    ]
    if personality.init is Init.SYSTEMD:
        units = _UNITS[:2] if stuck else _UNITS
        lines.extend(f"{_OK} {unit}\r\n".encode() for unit in units)
    else:
        services = _OPENRC_SERVICES[:3] if stuck else _OPENRC_SERVICES
        lines.extend(f" * Starting {name} ... [ ok ]\r\n".encode() for name in services)
    # the last line lands a little before getty, as on a real boot
    step = duration * 0.9 / len(lines)
    return [(i * step, line) for i, line in enumerate(lines)]


def systemd_time(seconds: float) -> str:
    """``42s``, ``1min 3s``, ``1h 2min 5s`` as systemd writes elapsed time."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}min {secs}s"
    return f"{minutes}min {secs}s" if minutes else f"{secs}s"


def start_job_line(personality: Personality, elapsed: float) -> bytes:
    """A boot that waits forever for a disk that never appears."""
    if personality.init is Init.OPENRC:
        return f" * Waiting for /dev/disk/by-label/data ({systemd_time(elapsed)}) ...\r\n".encode()
    job = "A start job is running for /dev/disk/by-label/data"
    return f"{_SPIN} {job} ({systemd_time(elapsed)} / no limit)\r\n".encode()


def stop_job_line(elapsed: float, limit: float) -> bytes:
    """A shutdown held up by a process that ignores SIGTERM."""
    job = "A stop job is running for User Manager for UID 1000"
    return f"{_SPIN} {job} ({systemd_time(elapsed)} / {systemd_time(limit)})\r\n".encode()


def shutdown_log(*, uptime: float, duration: float, reboot: bool, hang: bool = False) -> list[tuple[float, bytes]]:
    """systemd stopping units, then the kernel's last word, the last one at ``duration``.

    ``hang``: stop after the first unit (the caller prints ``stop_job_line``s)."""
    final = "reboot: Restarting system" if reboot else "reboot: Power down"
    units = _STOP_UNITS[:1] if hang else _STOP_UNITS
    lines = [f"{_OK} {unit}\r\n".encode() for unit in units]
    if not hang:
        lines.append(f"[{uptime:12.6f}] {final}\r\n".encode())
    step = duration / len(lines)
    return [((i + 1) * step, line) for i, line in enumerate(lines)]


def panic_lines(uptime: float) -> bytes:
    """The kernel's last words when the guest crashes."""
    stamps = [uptime, uptime + 0.000011, uptime + 0.000123]
    texts = [
        "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "Kernel panic - not syncing: Fatal exception",
        "---[ end Kernel panic - not syncing: Fatal exception ]---",
    ]
    return "".join(f"[{s:12.6f}] {t}\r\n" for s, t in zip(stamps, texts, strict=True)).encode()
