"""Boot, shutdown and crash lines: timestamps, order, replay, init flavours."""

from __future__ import annotations

import re

from simulator.bootlog import boot_log, kernel_lines, panic_lines, shutdown_log, start_job_line, systemd_time
from simulator.fleet import Personality
from simulator.personalities import ALPINE

STAMP = re.compile(rb"^\[\s*(\d+\.\d{6})\] ")


def test_kernel_lines_have_monotonic_printk_stamps_then_systemd_then_getty_time() -> None:
    log = boot_log(Personality(), memory_mib=2048, vcpus=2, duration=1.5, seed=11)
    offsets = [offset for offset, _ in log]
    assert offsets == sorted(offsets) and offsets[-1] < 1.5  # getty comes at 1.5
    lines = [line for _, line in log]
    assert all(line.endswith(b"\r\n") for line in lines)
    stamps = [float(m.group(1)) for line in lines if (m := STAMP.match(line))]
    assert len(stamps) >= 10 and stamps == sorted(stamps) and stamps[0] == 0.0
    assert re.match(rb"^\[    0\.000000\] Linux version 5\.15\.0-105-generic ", lines[0])
    assert b"Memory: 1917152K/2097152K available" in b"".join(lines)
    assert lines[-1] == b"[\x1b[0;32m  OK  \x1b[0m] Reached target Multi-User System.\r\n"


def test_the_same_seed_replays_the_same_log_for_dmesg() -> None:
    one = boot_log(Personality(), memory_mib=1024, vcpus=1, duration=2.0, seed=5)
    kernel = kernel_lines(Personality(), memory_mib=1024, vcpus=1, seed=5)
    assert [line.rstrip(b"\r\n") for _, line in one[: len(kernel)]] == [k.encode() for k in kernel]
    assert boot_log(Personality(), memory_mib=1024, vcpus=1, duration=2.0, seed=6) != one


def test_openrc_and_stuck_boots() -> None:
    alpine = b"".join(line for _, line in boot_log(ALPINE, memory_mib=512, vcpus=1, duration=1.0, seed=1))
    assert b"OpenRC 0.52.1 is starting up Linux 6.6.14-0-virt" in alpine and b" * Starting sshd ... [ ok ]" in alpine
    stuck = b"".join(
        line for _, line in boot_log(Personality(), memory_mib=512, vcpus=1, duration=1.0, seed=1, stuck=True)
    )
    assert b"Finished Load Kernel Modules" in stuck and b"Multi-User" not in stuck
    assert start_job_line(Personality(), 75.0).endswith(
        b"A start job is running for /dev/disk/by-label/data (1min 15s / no limit)\r\n"
    )
    assert start_job_line(ALPINE, 5.0) == b" * Waiting for /dev/disk/by-label/data (5s) ...\r\n"


def test_shutdown_and_panic() -> None:
    lines = shutdown_log(uptime=3725.5, duration=1.0, reboot=False)
    assert lines[-1] == (1.0, b"[ 3725.500000] reboot: Power down\r\n")
    hung = shutdown_log(uptime=1.0, duration=1.0, reboot=False, hang=True)
    assert len(hung) == 1 and b"Stopped target Multi-User System" in hung[0][1]
    panic = panic_lines(42.0)
    assert panic.startswith(b"[   42.000000] BUG: kernel NULL pointer dereference")
    assert b"Kernel panic - not syncing: Fatal exception\r\n" in panic
    assert (systemd_time(59.9), systemd_time(60), systemd_time(3725)) == ("59s", "1min 0s", "1h 2min 5s")
