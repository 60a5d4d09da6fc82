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
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e_libvirt.server import URI, start_server, token
from tests.harness.hosts import harness_cli, remove_stale_test_vms, require_qemu, vm_prefix

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu]

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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
        harness_cli("down", name, "--uri", URI)


class Monitor:
    """A monitoring connection that remembers every status and the latest metrics."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.status_messages: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] | None = None

    async def next(self, kind: str, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = orjson.loads(await self.ws.recv())
                if message["type"] == "status":
                    self.status_messages.append(message)
                elif message["type"] == "metrics":
                    self.metrics = message["data"]
                if message["type"] == kind:
                    return message

    async def status_since(self, index: int, wanted: str, timeout: float = BOOT) -> dict[str, Any]:
        """The first ``wanted`` status after the ``index``-th one (already seen or still to come)."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.status_messages[index:]:
                    if message["data"]["status"] == wanted:
                        return message
                await self.next("status", timeout)

    async def command(self, action: str, timeout: float = BOOT) -> dict[str, Any]:
        request_id = f"e2e-{action}-{time.monotonic_ns()}"
        await self.ws.send(orjson.dumps({"type": "command", "timestamp": "2026-01-01T00:00:00Z",
                                         "data": {"action": action, "requestId": request_id}}).decode())
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next("response", timeout)
                if message["data"]["requestId"] == request_id:
                    return message["data"]

    async def counters_until(self, done: Any, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                await self.next("metrics", timeout)
                assert self.metrics is not None
                if done(self.metrics):
                    return self.metrics


def test_watch_a_real_guest_through_its_lifecycle(served: Served) -> None:
    async def scenario() -> list[str]:
        url = f"{served.url}/ws/vms/{served.name}?token={token('read', 'control')}"
        async with connect(url, max_size=2**22) as ws:
            monitor = Monitor(ws)
            hello = await monitor.next("connection", 30)
            assert hello["data"]["vm"] == served.name
            first = await monitor.next("status", 30)
            assert first["data"]["status"] == "running"
            for action, status in [("suspend", "suspended"), ("resume", "running"), ("restart", "running"),
                                   ("stop", "stopped"), ("start", "running")]:
                seen = len(monitor.status_messages)
                response = await monitor.command(action)
                assert response["success"], response
                event = await monitor.status_since(seen, status)
                if action == "restart":
                    assert event["data"]["uptime"] < 60, "a restart starts the uptime again"
                if status == "stopped":
                    assert event["data"]["uptime"] == 0
            stopped = len(monitor.status_messages)
            assert (await monitor.command("stop"))["success"]
            await monitor.status_since(stopped, "stopped")
            refused = await monitor.command("resume", timeout=60)
            assert not refused["success"], "resume of a stopped VM is refused"
            assert (await monitor.command("start"))["success"]
            return [m["data"]["status"] for m in monitor.status_messages]

    statuses = asyncio.run(scenario())
    changes = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert changes == ["running", "suspended", "running", "stopped", "running", "stopped", "running"], statuses


def test_console_login_commands_and_counters(served: Served) -> None:
    from harness.login import ConsoleSession

    # The person's path first: the CLI logs in through `vmws console` and runs a command.
    env_token = token("read", "console")
    result = subprocess.run(
        [sys.executable, "-m", "harness", "wait-login", served.name, "--url", served.url, "--timeout", str(BOOT),
         "--run", "hostname"],
        env={**os.environ, "VMWS_TOKEN": env_token}, capture_output=True, text=True, timeout=BOOT + 60,
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
            await loop.run_in_executor(None, session.run,
                                       "dd if=/dev/urandom of=/dev/vda bs=64k count=32 conv=fsync 2>&1 | tail -1")
            await loop.run_in_executor(None, session.run, "nc -w 2 10.0.2.2 80 </dev/null; echo sent")
            after = await monitor.counters_until(
                lambda m: m["disk"]["writeBytes"] >= before["disk"]["writeBytes"] + 2 * 2**20
                and m["network"]["txBytes"] > before["network"]["txBytes"], 60)
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
