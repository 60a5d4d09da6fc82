"""libvirt ownership in a cluster, over real libvirt and a real tiny QEMU guest.

Two nodes over the same ``qemu:///system`` and one Redis: the VM has one owner (its
lease), a viewer on each node; ``kill -9`` of the owner; the other node takes the lease,
serves the console (the shell still answers, a login works), a viewer resumes on it with
``?since=`` byte-identically, and a watcher sees no status change that did not happen.
One guest is booted for the module (TCG is slow).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from loadtests.cluster_procs import RedisProcess, start_redis
from tests.cluster.conftest import Node, token
from tests.e2e_libvirt.clients import Monitor, Viewer
from tests.harness.hosts import LIBVIRT_GROUP, harness_cli, remove_stale_test_vms, require_qemu, vm_prefix

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

URI = "qemu:///system"
PREFIX = vm_prefix("lease")
TAKEOVER_WAIT = 40.0  # generous: the lease TTL is 10 s; the benchmark measures the time


@pytest.fixture(scope="module")
def guest() -> Iterator[str]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    name = f"{PREFIX}g"
    harness_cli("up", name, "--uri", URI, "--accel", os.environ.get("VMWS_TEST_ACCEL", "auto"), "--replace")
    try:
        yield name
    finally:
        harness_cli("down", name, "--uri", URI)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def libvirt_node(directory: Path, name: str, guest: str, redis: RedisProcess, *uris: str) -> Node:
    flags = ["--backend", "libvirt", "--vm-filter", f"{guest}*", "--metrics-interval", "1"]
    for uri in uris or (URI,):
        flags += ["--libvirt-uri", uri]
    return Node(directory, name, *flags, redis_url=redis.url)


def get_json(node: Node, path: str) -> Any:
    request = urllib.request.Request(node.http + path, headers={"Authorization": f"Bearer {token('read')}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def owner_of(node: Node, vm: str) -> str | None:
    for entry in get_json(node, "/api/vms")["vms"]:
        if entry["name"] == vm:
            return entry["node"]  # type: ignore[no-any-return]
    return None


def wait_owner(node: Node, vm: str, wanted: str) -> None:
    deadline = time.monotonic() + TAKEOVER_WAIT
    while owner_of(node, vm) != wanted:
        assert time.monotonic() < deadline, f"{wanted} did not come to own {vm}: {get_json(node, '/api/vms')}"
        time.sleep(0.2)


async def viewer(node: Node, vm: str, query: str = "") -> Viewer:
    ws = await connect(f"{node.ws}/ws/vms/{vm}/console?token={token('console')}{query}", max_size=2**22)
    return Viewer(ws)


async def monitor(node: Node, vm: str) -> Monitor:
    ws = await connect(f"{node.ws}/ws/vms/{vm}?token={token('read', 'control')}", max_size=2**22)
    watcher = Monitor(ws)
    await watcher.next("connection", 30)
    await watcher.next("status", 30)
    return watcher


def console_runs(view: Viewer) -> list[tuple[int, str, str]]:
    """``(offset, epoch, content)`` of every console message with content."""
    return [
        (m["data"]["offset"], m["data"]["epoch"], m["data"]["content"])
        for m in view.messages
        if m["type"] == "console" and m["data"]["content"]
    ]


async def settled_status(watcher: Monitor, seconds: float) -> None:
    """Read whatever the watcher is sent for ``seconds`` (statuses are kept)."""
    try:
        await watcher.next("never", seconds)
    except TimeoutError:
        pass


def test_the_vm_has_one_owner_and_a_live_candidate_takes_over_after_kill_9(
    tmp_path: Path, guest: str, redis: RedisProcess
) -> None:
    first = libvirt_node(tmp_path, "node-1", guest, redis).start()
    second = libvirt_node(tmp_path, "node-2", guest, redis).start()
    try:
        # node-1 started first: it took the lease; node-2 serves the VM through it.
        assert owner_of(first, guest) == "node-1"
        assert owner_of(second, guest) == "node-1"

        async def scenario() -> None:
            on_owner = await viewer(first, guest)
            on_other = await viewer(second, guest)
            watcher = await monitor(second, guest)
            await on_owner.login("admin", "admin", 180)
            before = await on_owner.run("echo one-$((6*7))", "m1")
            assert "one-42" in before
            await on_other.expect("one-42", 30)  # the relayed viewer sees the same output
            await on_other.expect(r"m1E\r*\n.*[$#] $", 30)
            epoch = console_runs(on_other)[-1][1]
            statuses_before = len(watcher.status_messages)

            first.kill()
            await asyncio.get_running_loop().run_in_executor(None, wait_owner, second, guest, "node-2")

            # The relayed viewer on node-2 is told to resume (1013), then resumes there.
            await asyncio.wait_for(on_other.closed.wait(), 30)
            assert on_other.close_code == 1013
            runs = console_runs(on_other)
            since = runs[len(runs) // 2][0]  # from somewhere inside what it saw
            seen = "".join(content for offset, _, content in runs if offset >= since)
            resumed = await viewer(second, guest, f"&since={since}&epoch={epoch}")
            await resumed.expect("one-42", 30)
            assert resumed.messages[0]["type"] == "connection"
            assert resumed.messages[0]["data"]["epoch"] == epoch  # the SAME epoch goes on
            assert resumed.text.startswith(seen.replace("\x1b[6n", "")), (resumed.text[:300], seen[:300])

            # The console is served by the new owner: the shell answers, a login works.
            after = await resumed.run("echo two-$((6*7))", "m2")
            assert "two-42" in after
            await resumed.send("exit\r")
            await resumed.expect("login: $", 60)
            await resumed.login("admin", "admin", 120)
            assert "three-42" in await resumed.run("echo three-$((6*7))", "m3")
            offsets = [offset for offset, e, _ in console_runs(resumed) if e == epoch]
            assert offsets == sorted(offsets)

            # The watcher on node-2 saw no status change that did not happen.
            await settled_status(watcher, 2)
            assert all(m["data"]["status"] == "running" for m in watcher.status_messages[statuses_before:])
            assert watcher.ws.close_code is None
            await resumed.aclose()
            await watcher.ws.close()

        asyncio.run(scenario())
        cluster = get_json(second, "/api/cluster")
        assert [n["name"] for n in cluster["nodes"]] == ["node-2"]
        assert "Traceback" not in second.log()
    finally:
        first.stop()
        second.stop()
