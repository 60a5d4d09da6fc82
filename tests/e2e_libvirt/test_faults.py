"""Faults survived on real guests: libvirtd restarted under watchers and a console, and a
guest's QEMU killed with ``kill -9``, while ``vmws serve --backend libvirt`` serves a
second guest throughout.

Both guests boot once per module; the tests bring them back to running themselves.
Restarting libvirtd pulls it from under every libvirt client on the host, so the
restart holds ``tests.harness.daemon.LIBVIRTD`` exclusively: other libvirt tests (the
other xdist worker, other pytest runs) wait, and it waits for them.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e_libvirt.clients import Monitor, open_monitor, open_viewer
from tests.e2e_libvirt.server import URI, start_server, stop_server
from tests.harness.daemon import (
    LIBVIRTD,
    ensure_libvirtd,
    kill_qemu,
    start_libvirtd,
    stop_libvirtd,
)
from tests.harness.hosts import (
    LIBVIRT_GROUP,
    harness_cli,
    remove_stale_test_vms,
    require_qemu,
    vm_prefix,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

PREFIX = vm_prefix("ft")
VICTIM, BYSTANDER = f"{PREFIX}a", f"{PREFIX}b"
BOOT = 180.0
# The backend notices a dead daemon at once (its socket closes) and retries with
# backoff 0.5, 1, 2, 4 s...: a restart of a few seconds is over well within these.
OUTAGE_SEEN = 30.0
RECOVERED = 60.0


@dataclass(frozen=True)
class Site:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def assert_healthy(self) -> None:
        assert self.proc.poll() is None, f"vmws serve exited ({self.proc.returncode}):\n{self.log.read_text()}"
        log = self.log.read_text()
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    accel = os.environ.get("VMWS_TEST_ACCEL", "auto")
    log = tmp_path_factory.mktemp("faults") / "vmws.log"
    proc: subprocess.Popen[str] | None = None
    try:
        for name in (VICTIM, BYSTANDER):
            harness_cli("up", name, "--uri", URI, "--accel", accel, "--replace")
        proc, url = start_server(f"{PREFIX}*", log)
        yield Site(url, proc, log)
    finally:
        ensure_libvirtd(URI)  # a failed restart test must not take the rest of the suite down
        if proc is not None:
            stop_server(proc)
        for name in (VICTIM, BYSTANDER):
            harness_cli("down", name, "--uri", URI)


async def _running(url: str, name: str) -> Monitor:
    """A watcher on ``name``, started first if a test before left it stopped or crashed."""
    monitor, first = await open_monitor(url, name)
    if first["data"]["status"] != "running":
        seen = len(monitor.status_messages)
        response = await monitor.command("start", BOOT)
        assert response["success"], response
        await monitor.status_since(seen, "running", BOOT)
    return monitor


def _after(monitor: Monitor, message: dict[str, object]) -> int:
    """The index just past ``message`` in what ``monitor`` has seen."""
    return next(i for i, m in enumerate(monitor.status_messages) if m is message) + 1


def _ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"tick-(\d+)\r?\n", text)]


@pytest.mark.asyncio
async def test_libvirtd_restart_watchers_see_the_outage_and_recover_and_the_console_carries_on(site: Site) -> None:
    watcher = await _running(site.url, VICTIM)
    bystander = await _running(site.url, BYSTANDER)
    viewer = await open_viewer(site.url, VICTIM)
    try:
        await viewer.login("admin", "admin", BOOT)
        assert (await viewer.run("hostname", "h1")).strip() == VICTIM
        # Output nobody asks for: a console that only shows (a log tail) must resume too.
        await viewer.send("(i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo tick-$i; sleep 1; done) & echo ticker=$!\r")
        ticker = (await viewer.expect(r"ticker=(\d+)", 30)).group(1)
        await viewer.expect(r"tick-2\r?\n", 30)

        async with LIBVIRTD.exclusive_async():
            before = len(watcher.status_messages)
            started = time.monotonic()
            await asyncio.to_thread(stop_libvirtd)
            stopped = time.monotonic()
            outage = await watcher.status_since(before, "error", OUTAGE_SEEN)
            seen_down = time.monotonic()
            last_tick = max(_ticks(viewer.text))

            # While libvirtd is away the server still serves: a new watcher of the other
            # VM is let in and told the truth (unknown, so error); old ones get answers.
            newcomer, status = await open_monitor(site.url, BYSTANDER)
            assert status["data"]["status"] == "error"
            await newcomer.ws.close()
            await bystander.echo()

            restarting = time.monotonic()
            await asyncio.to_thread(start_libvirtd, URI)
            back = time.monotonic()
            viewer.pos = len(viewer.text)
            # The same sockets, never reconnected: the real status comes back.
            await watcher.status_since(_after(watcher, outage), "running", RECOVERED)
            recovered = time.monotonic()
            # The console re-opened by itself: new ticks arrive without anyone typing.
            tick = int((await viewer.expect(r"tick-(\d+)\r?\n", 30)).group(1))
            resumed = time.monotonic()
            assert tick > last_tick
        bystander_outage = await bystander.status_since(1, "error", OUTAGE_SEEN)
        await bystander.status_since(_after(bystander, bystander_outage), "running", RECOVERED)
        # And input reaches the same shell (still logged in: the guest never noticed).
        printed = (await viewer.run("echo after-restart", "h2")).split()
        assert [line for line in printed if not line.startswith("tick-")] == ["after-restart"], printed
        await viewer.run(f"kill {ticker}", "h3")

        for ws in (watcher.ws, bystander.ws, viewer.ws):
            assert ws.close_code is None, "a client was disconnected"
        await bystander.echo()
        site.assert_healthy()
        print(
            f"\nlibvirtd restart: stopped in {stopped - started:.2f} s, error seen {seen_down - stopped:.2f} s "
            f"later; `libvirtd -d` answered in {back - restarting:.2f} s; running again {recovered - back:.2f} s after "
            f"libvirtd answered; console output {resumed - back:.2f} s after"
        )
    finally:
        await viewer.aclose()
        await watcher.ws.close()
        await bystander.ws.close()


@pytest.mark.asyncio
async def test_qemu_killed_watchers_see_error_viewers_get_eof_and_other_vms_are_served(site: Site) -> None:
    watcher = await _running(site.url, VICTIM)
    bystander = await _running(site.url, BYSTANDER)
    viewer = await open_viewer(site.url, VICTIM)
    other_viewer = await open_viewer(site.url, BYSTANDER)
    try:
        await viewer.send("\r")
        await viewer.expect(r"login: ?$|[$#] $", BOOT)

        before = len(watcher.status_messages)
        await asyncio.to_thread(kill_qemu, VICTIM)  # libvirtd stays: the steady hold is enough
        await watcher.status_since(before, "error", OUTAGE_SEEN)
        await asyncio.wait_for(viewer.closed.wait(), OUTAGE_SEEN)
        last = viewer.messages[-1]
        assert last["type"] == "console", last
        assert last["data"]["content"] == "" and last["data"]["eof"] is True, last
        assert viewer.close_code == 1000

        # The server goes on serving the other VM: its watcher, a newcomer, its console.
        await bystander.echo()
        assert [m["data"]["status"] for m in bystander.status_messages] == ["running"], bystander.status_messages
        newcomer, status = await open_monitor(site.url, BYSTANDER)
        assert status["data"]["status"] == "running"
        await newcomer.ws.close()
        await other_viewer.send("\r")
        await other_viewer.expect(r"login: ?$|[$#] $", BOOT)
        assert other_viewer.close_code is None
        # A new viewer of the dead VM is refused, not hung.
        refused = await open_viewer(site.url, VICTIM)
        await asyncio.wait_for(refused.closed.wait(), 30)
        assert any(m["type"] == "error" and m["data"]["code"] == "VM_NOT_RUNNING" for m in refused.messages), (
            refused.messages
        )

        # `start` is the way out of error, on the same watcher.
        seen = len(watcher.status_messages)
        response = await watcher.command("start", BOOT)
        assert response["success"], response
        await watcher.status_since(seen, "running", BOOT)
        site.assert_healthy()
    finally:
        for v in (viewer, other_viewer):
            await v.aclose()
        await watcher.ws.close()
        await bystander.ws.close()
