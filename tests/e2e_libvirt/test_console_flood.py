"""A guest flooding its serial console while nobody reads must not grow the gateway.

The hub stops reading a console while its viewers are behind; what the guest prints
meanwhile must not pile up in the server (in the libvirt console's queue, or in
libvirt's own client library, which takes stream data whether it is asked for or not).
A real tiny guest runs ``yes`` on its console; the only viewer logs in, starts it and
then never reads again (it only sends heartbeats, so the server keeps it); the server's
resident memory is measured before the flood, once the buffers on the way have filled,
and FLOOD_SECONDS later (figures printed). The total gets a generous bound; the steady
part must stay flat: a guest under TCG prints only ~100-200 KB/s, so a leak takes many
minutes to reach the generous bound but shows in the steady part (+13-17 MiB measured
on the base commit and with readable events merely switched off).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e_libvirt.clients import Viewer, open_viewer
from tests.e2e_libvirt.server import URI, start_server, stop_server
from tests.harness.hosts import (
    LIBVIRT_GROUP,
    harness_cli,
    remove_stale_test_vms,
    require_qemu,
    vm_prefix,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

PREFIX = vm_prefix("fl")
BOOT = 180.0
SETTLE_SECONDS = 30.0
FLOOD_SECONDS = 90.0
RSS_BOUND = 64 * 2**20
STEADY_BOUND = 4 * 2**20
# Long lines: more bytes per line the guest's tty and busybox `yes` push.
LINE = "flood-" * 40


@dataclass(frozen=True)
class Served:
    url: str
    name: str
    pid: int
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    name = f"{PREFIX}g"
    log = tmp_path_factory.mktemp("flood") / "vmws.log"
    harness_cli("up", name, "--uri", URI, "--accel", os.environ.get("VMWS_TEST_ACCEL", "auto"), "--replace")
    proc, url = start_server(f"{PREFIX}*", log)
    try:
        yield Served(url, name, proc.pid, log)
    finally:
        stop_server(proc)
        harness_cli("down", name, "--uri", URI)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def _stay(viewer: Viewer, seconds: float) -> None:
    """Wait ``seconds``, sending a heartbeat every few, so the server keeps the viewer."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await viewer.heartbeat()
        await asyncio.sleep(min(5.0, left))


@pytest.mark.asyncio
@pytest.mark.timeout(600)
async def test_a_flood_nobody_reads_keeps_the_server_small(served: Served) -> None:
    viewer = await open_viewer(served.url, served.name, keepalive=False)
    try:
        await viewer.login("admin", "admin", BOOT)
        await viewer.send(f"yes {LINE}\r")
        await viewer.expect(f"{LINE}\r\n{LINE}\r\n", 60)
        # From here on the viewer reads nothing: its socket, then the server's send
        # buffer for it fill up, and the hub stops reading the console.
        await viewer.stop_reading()
        before = _rss(served.pid)
        # The first seconds fill what sits between guest and viewer (kernel socket
        # buffers, the viewer's send buffer, libvirt's): a few MiB at most, and once.
        await _stay(viewer, SETTLE_SECONDS)
        settled = _rss(served.pid)
        await _stay(viewer, FLOOD_SECONDS)
        after = _rss(served.pid)
        print(
            f"\nserver RSS {before / 2**20:.1f} MiB before the flood, {settled / 2**20:.1f} MiB "
            f"{SETTLE_SECONDS:g} s in, {after / 2**20:.1f} MiB {FLOOD_SECONDS:g} s later"
        )
        assert after - before < RSS_BOUND, (before, after)
        # Bounded, the steady flood adds nothing more; queued anywhere in the process, it adds MiBs.
        assert after - settled < STEADY_BOUND, (settled, after)
        assert "Traceback" not in served.log.read_text()
    finally:
        await viewer.aclose()
