"""Several hypervisor hosts on one node (``--libvirt-uri`` repeated), over real libvirt
test-driver connections: every host's VMs are listed; a name on two hosts is served from
neither and reported, with both hosts, in the log and in ``/api/cluster``."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from loadtests.cluster_procs import RedisProcess
from tests.cluster.conftest import Node, token
from tests.cluster.test_drain import domain
from tests.harness.hosts import LIBVIRT_GROUP, require_libvirt

__all__ = ["domain"]  # a fixture: a qemu:///system domain, defined, never booted

# A second test-driver host whose "test" domain is named like test:///default's.
_TWIN_HOST = """<node>
  <domain type="test"><name>test</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>
  <domain type="test"><name>only-here</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>
</node>
"""


def _get(node: Node, path: str) -> Any:
    request = urllib.request.Request(node.http + path, headers={"Authorization": f"Bearer {token('read')}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def twin_host(tmp_path: Path) -> str:
    require_libvirt()
    path = tmp_path / "twin.xml"
    path.write_text(_TWIN_HOST)
    return f"test://{path}"


def test_one_node_lists_every_hosts_vms_and_serves_no_name_found_twice(tmp_path: Path, twin_host: str) -> None:
    node = Node(
        tmp_path, "multi", "--backend", "libvirt", "--libvirt-uri", "test:///default", "--libvirt-uri", twin_host
    ).start()
    try:
        names = [vm["name"] for vm in _get(node, "/api/vms")["vms"]]
        assert names == ["only-here"]  # "test" is on both hosts: served from neither
        conflicts = _get(node, "/api/cluster")["conflicts"]
        assert [c["name"] for c in conflicts] == ["test"]
        assert sorted(h["uri"] for h in conflicts[0]["hosts"]) == sorted(["test:///default", twin_host])
        assert len({h["id"] for h in conflicts[0]["hosts"]}) == 2  # two hosts, not one host twice

        async def refused() -> tuple[dict[str, Any], int | None]:
            async with connect(f"{node.ws}/ws/vms/test?token={token()}") as ws:
                first = json.loads(await ws.recv())
                await ws.wait_closed()
                return first, ws.close_code

        message, code = asyncio.run(refused())
        assert code == 4004
        assert "several hypervisor hosts" in message["data"]["message"]
        log = node.log()
        assert log.count("VM name 'test' is on several hypervisor hosts") == 1, log[-2000:]
        assert "Traceback" not in log
    finally:
        node.stop()


def test_the_same_host_given_twice_is_refused_clearly(tmp_path: Path) -> None:
    require_libvirt()
    node = Node(tmp_path, "twice", "--backend", "libvirt", "--libvirt-uri", "test:///default")
    node.flags = (*node.flags, "--libvirt-uri", "test:///default")
    with pytest.raises(RuntimeError, match="exited with 2"):
        node.start()
    assert "vmws: error: --libvirt-uri test:///default reaches the same host" in node.log()
    assert "Traceback" not in node.log()


@pytest.mark.libvirt
@LIBVIRT_GROUP
def test_one_node_over_qemu_and_the_test_driver_lists_both_hosts_vms(tmp_path: Path, domain: str) -> None:
    # A third host, node-local, whose domain is named like the qemu one: that name is
    # served from neither; every other VM of both hosts is listed.
    twin = tmp_path / "twin-of-qemu.xml"
    twin.write_text(_TWIN_HOST.replace("<name>test</name>", f"<name>{domain}</name>"))
    node = Node(
        tmp_path, "mixed", "--backend", "libvirt", "--libvirt-uri", "qemu:///system", "--libvirt-uri", "test:///default"
    ).start()
    try:
        names = {vm["name"] for vm in _get(node, "/api/vms")["vms"]}
        assert {domain, "test"} <= names  # one VM of each host
        assert _get(node, "/api/cluster")["conflicts"] == []
    finally:
        node.stop()
    node = Node(
        tmp_path,
        "mixed-twin",
        "--backend",
        "libvirt",
        "--libvirt-uri",
        "qemu:///system",
        "--libvirt-uri",
        "test:///default",
        "--libvirt-uri",
        f"test://{twin}",
    ).start()
    try:
        names = {vm["name"] for vm in _get(node, "/api/vms")["vms"]}
        assert domain not in names and "only-here" in names
        conflicts = {c["name"]: c for c in _get(node, "/api/cluster")["conflicts"]}
        assert set(conflicts) == {domain}
        assert {h["uri"] for h in conflicts[domain]["hosts"]} == {"qemu:///system", f"test://{twin}"}
        assert any(h["id"].startswith("uuid:") for h in conflicts[domain]["hosts"])  # the host UUID, not the URI
    finally:
        node.stop()


def test_a_name_on_two_nodes_hosts_is_served_from_neither_and_reported(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    # test:///default is node-local: two nodes over it are two hosts with a "test" each.
    require_libvirt()
    nodes = [
        Node(
            tmp_path,
            f"node-{k}",
            "--backend",
            "libvirt",
            "--libvirt-uri",
            "test:///default",
            redis_url=redis_server.url,
        ).start()
        for k in (1, 2)
    ]
    try:
        deadline = time.monotonic() + 30
        while True:  # each node learns of the other's host within a refresh (3 s)
            listed = [{vm["name"] for vm in _get(node, "/api/vms")["vms"]} for node in nodes]
            reported = [[c["name"] for c in _get(node, "/api/cluster")["conflicts"]] for node in nodes]
            if listed == [set(), set()] and reported == [["test"], ["test"]]:
                break
            assert time.monotonic() < deadline, (listed, reported)
            time.sleep(0.2)
        hosts = {h["id"] for h in _get(nodes[0], "/api/cluster")["conflicts"][0]["hosts"]}
        assert hosts == {"local:node-1:test:///default", "local:node-2:test:///default"}
        for node in nodes:
            assert node.log().count("VM name 'test' is on several hypervisor hosts") == 1, node.log()[-2000:]
            assert "Traceback" not in node.log()
    finally:
        for node in nodes:
            node.stop()
