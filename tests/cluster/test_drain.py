"""Drain and rolling upgrade (SIGTERM), over real processes: ``/readyz`` turns 503, a
cluster node hands its libvirt VMs to another node at once and closes its sockets with
1012; a node alone closes with 1001 as before. The libvirt VM is a real domain of
``qemu:///system``, defined but never booted (ownership needs no running guest)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from loadtests.cluster_procs import RedisProcess
from tests.cluster.conftest import Node, token
from tests.cluster.test_libvirt_takeover import libvirt_node, owner_of
from tests.harness.daemon import LIBVIRTD
from tests.harness.hosts import LIBVIRT_GROUP, remove_stale_test_vms, require_qemu, vm_prefix

URI = "qemu:///system"
DELAY = "3"  # --drain-delay: /readyz says 503 that long before the sockets close

_DOMAIN = """<domain type="qemu">
  <name>{name}</name>
  <memory unit="MiB">64</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64">hvm</type></os>
</domain>
"""


def virsh(*args: str, stdin: str | None = None) -> None:
    with LIBVIRTD.steady():
        subprocess.run(["virsh", "-c", URI, *args], input=stdin, check=True, capture_output=True, text=True)


@pytest.fixture
def domain(tmp_path: Path) -> Iterator[str]:
    require_qemu(URI)
    remove_stale_test_vms(URI)
    name = f"{vm_prefix('drain')}d"
    path = tmp_path / "domain.xml"
    path.write_text(_DOMAIN.format(name=name))
    virsh("define", str(path))
    try:
        yield name
    finally:
        virsh("undefine", name)


def ready(node: Node) -> int:
    try:
        with urllib.request.urlopen(node.http + "/readyz", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_not_ready(node: Node) -> None:
    deadline = time.monotonic() + 30
    while ready(node) == 200:
        assert time.monotonic() < deadline, "/readyz still 200 after SIGTERM"
        time.sleep(0.05)


async def watch_until_closed(node: Node, vm: str, then: object) -> tuple[int | None, list[str]]:
    """Watch ``vm`` on ``node``, call ``then`` (in a thread), read until closed."""
    async with connect(f"{node.ws}/ws/vms/{vm}?token={token('read')}") as ws:
        types = [json.loads(await ws.recv())["type"] for _ in range(2)]  # connection, status
        await asyncio.get_running_loop().run_in_executor(None, then)
        try:
            async for raw in ws:
                types.append(json.loads(raw)["type"])
        except Exception:
            pass
        return ws.close_code, types


@pytest.mark.libvirt
@LIBVIRT_GROUP
def test_a_draining_node_hands_its_vms_over_then_closes_its_sockets_with_1012(
    tmp_path: Path, domain: str, redis_server: RedisProcess
) -> None:
    owner = libvirt_node(tmp_path, "node-1", domain, redis_server)
    owner.flags = (*owner.flags, "--drain-delay", DELAY)
    owner.start()  # first: it takes the VM's lease
    other = libvirt_node(tmp_path, "node-2", domain, redis_server).start()
    try:
        assert owner_of(other, domain) == "node-1"
        assert ready(owner) == 200

        def sigterm() -> None:
            assert owner.proc is not None
            owner.proc.send_signal(signal.SIGTERM)
            wait_not_ready(owner)
            assert owner.proc.poll() is None  # still serving while the balancer notices

        code, types = asyncio.run(watch_until_closed(owner, domain, sigterm))
        assert code == 1012, types
        # Handed over before the sockets closed: the other node owns it already.
        assert owner_of(other, domain) == "node-2"
        assert owner.proc is not None and owner.proc.wait(30) == 0
        log = owner.log()
        assert "drained: 1 VMs handed over" in log, log[-2000:]
        assert "Traceback" not in log
    finally:
        owner.stop()
        other.stop()


def test_a_node_alone_turns_not_ready_and_closes_with_1001(tmp_path: Path) -> None:
    node = Node(tmp_path, "alone", "--drain-delay", DELAY).start()
    try:
        assert ready(node) == 200

        def sigterm() -> None:
            assert node.proc is not None
            node.proc.send_signal(signal.SIGTERM)
            wait_not_ready(node)

        code, _ = asyncio.run(watch_until_closed(node, "my-vm", sigterm))
        assert code == 1001
        assert node.proc is not None and node.proc.wait(30) == 0
    finally:
        node.stop()


def test_a_simulator_shard_draining_closes_with_1012(tmp_path: Path, redis_server: RedisProcess) -> None:
    node = Node(tmp_path, "shard", "--shard", "1/1", "--drain-delay", "0", redis_url=redis_server.url).start()
    try:

        def sigterm() -> None:
            assert node.proc is not None
            node.proc.send_signal(signal.SIGTERM)

        code, _ = asyncio.run(watch_until_closed(node, "my-vm", sigterm))
        assert code == 1012
        assert node.proc is not None and node.proc.wait(30) == 0
        assert "SIGTERM: draining" in node.log()
    finally:
        node.stop()
