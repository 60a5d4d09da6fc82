"""End to end on a real guest: ``vmws serve --backend libvirt`` with a tiny QEMU VM.

A client (the ``websockets`` library) watches the VM over ``/ws/vms/NAME`` through
suspend, resume, restart, stop and start; a person's path (``vmws console`` driven by
pexpect, through ``python -m harness wait-login`` and ``harness.login``) logs in on the
serial console, runs commands, writes to the disk and sends packets, and the metrics
stream shows the disk and network counters rise.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.e2e_libvirt.clients import Monitor
from tests.e2e_libvirt.server import URI, start_server, stop_server, token
from tests.harness.hosts import (
    LIBVIRT_GROUP,
    harness_cli,
    remove_stale_test_vms,
    require_qemu,
    vm_prefix,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

PREFIX = vm_prefix("e2e")
BOOT = 180.0


@dataclass(frozen=True)
class Served:
    url: str
    name: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    name = f"{PREFIX}{os.getpid() % 1000}g"
    harness_cli("up", name, "--uri", URI, "--accel", os.environ.get("VMWS_TEST_ACCEL", "auto"), "--replace")
    proc, url = start_server(f"{PREFIX}*")
    try:
        yield Served(url, name)
    finally:
        stop_server(proc)
        harness_cli("down", name, "--uri", URI)


def test_watch_a_real_guest_through_its_lifecycle(served: Served) -> None:
    async def scenario() -> list[str]:
        url = f"{served.url}/ws/vms/{served.name}?token={token('read', 'control')}"
        async with connect(url, max_size=2**22) as ws:
            monitor = Monitor(ws)
            hello = await monitor.next("connection", 30)
            assert hello["data"]["vm"] == served.name
            first = await monitor.next("status", 30)
            assert first["data"]["status"] == "running"
            for action, status in [
                ("suspend", "suspended"),
                ("resume", "running"),
                ("restart", "running"),
                ("stop", "stopped"),
                ("start", "running"),
            ]:
                seen = len(monitor.status_messages)
                response = await monitor.command(action, BOOT)
                assert response["success"], response
                event = await monitor.status_since(seen, status, BOOT)
                if action == "restart":
                    assert event["data"]["uptime"] < 60, "a restart starts the uptime again"
                if status == "stopped":
                    assert event["data"]["uptime"] == 0
            stopped = len(monitor.status_messages)
            assert (await monitor.command("stop", BOOT))["success"]
            await monitor.status_since(stopped, "stopped", BOOT)
            refused = await monitor.command("resume", timeout=60)
            assert not refused["success"], "resume of a stopped VM is refused"
            assert (await monitor.command("start", BOOT))["success"]
            return [m["data"]["status"] for m in monitor.status_messages]

    statuses = asyncio.run(scenario())
    changes = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert changes == ["running", "suspended", "running", "stopped", "running", "stopped", "running"], statuses


def test_console_login_commands_and_counters(served: Served) -> None:
    from harness.login import ConsoleSession

    # The person's path first: the CLI logs in through `vmws console` and runs a command.
    env_token = token("read", "console")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "wait-login",
            served.name,
            "--url",
            served.url,
            "--timeout",
            str(BOOT),
            "--run",
            "hostname",
        ],
        env={**os.environ, "VMWS_TOKEN": env_token},
        capture_output=True,
        text=True,
        timeout=BOOT + 60,
    )
    assert result.returncode == 0, result.stderr
    assert f"{served.name}: logged in as admin" in result.stdout
    assert result.stdout.strip().endswith(served.name)

    async def watch_counters(session: ConsoleSession) -> tuple[dict[str, Any], dict[str, Any]]:
        url = f"{served.url}/ws/vms/{served.name}?token={token('read')}"
        async with connect(url) as ws:
            monitor = Monitor(ws)
            before = await monitor.counters_until(lambda m: True, 30)
            loop = asyncio.get_running_loop()
            # 2 MiB straight to the virtio disk, then TCP SYNs out of the virtio NIC.
            await loop.run_in_executor(
                None, session.run, "dd if=/dev/urandom of=/dev/vda bs=64k count=32 conv=fsync 2>&1 | tail -1"
            )
            await loop.run_in_executor(None, session.run, "nc -w 2 10.0.2.2 80 </dev/null; echo sent")
            after = await monitor.counters_until(
                lambda m: (
                    m["disk"]["writeBytes"] >= before["disk"]["writeBytes"] + 2 * 2**20
                    and m["network"]["txBytes"] > before["network"]["txBytes"]
                ),
                60,
            )
            return before, after

    session = ConsoleSession(served.name, url=served.url, token=env_token, timeout=BOOT)
    try:
        session.login("admin", "admin")
        assert session.run("hostname").strip() == served.name
        assert session.run("whoami").strip() == "admin"
        assert "not found" in session.run("no-such-command-e2e")
        before, after = asyncio.run(watch_counters(session))
    finally:
        session.close()
    assert after["disk"]["writeBytes"] - before["disk"]["writeBytes"] >= 2 * 2**20
    assert after["network"]["txBytes"] > before["network"]["txBytes"]
    assert 0 < after["memory"]["used"] <= after["memory"]["total"]
    assert 0.0 <= after["cpu"]["utilization"] <= 100.0
