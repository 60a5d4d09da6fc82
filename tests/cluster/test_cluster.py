"""The cluster foundation over real processes: shards, cluster-wide tickets, membership."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from loadtests.cluster_procs import start_redis
from simulator.scenario import demo_fleet

from .conftest import Node, token

pytestmark = pytest.mark.xdist_group("cluster")


def http(method: str, url: str, tok: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if tok:
        request.add_header("Authorization", f"Bearer {tok}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def vms_of(node: Node) -> list[str]:
    status, body = http("GET", node.http + "/api/vms", token("read"))
    assert status == 200
    return [vm["name"] for vm in body["vms"]]


async def first_messages(url: str, n: int = 2) -> tuple[list[dict[str, Any]], int | None]:
    async with websockets.connect(url) as ws:
        messages = []
        try:
            for _ in range(n):
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed:
            pass
        if messages and messages[-1]["type"] == "error":
            await asyncio.wait_for(ws.wait_closed(), 10)
        return messages, ws.close_code


def test_n_shards_serve_every_demo_vm_exactly_once_without_redis(start_nodes: Any) -> None:
    nodes = start_nodes(3)
    served = [name for node in nodes for name in vms_of(node)]
    assert sorted(served) == sorted(vm.name for vm in demo_fleet().vms)  # all, none twice
    assert all(vms_of(node) for node in nodes)  # 10 names over 3 shards: none is empty


@pytest.mark.asyncio
async def test_a_ticket_bought_on_node_1_works_once_on_node_2_and_is_refused_on_node_3(
    redis_server: Any, start_nodes: Any
) -> None:
    n1, n2, n3 = start_nodes(3, redis_url=redis_server.url)
    vm = vms_of(n2)[0]
    status, body = http("POST", n1.http + "/api/tickets", token())
    assert status == 201
    ticket = body["ticket"]
    messages, _ = await first_messages(f"{n2.ws}/ws/vms/{vm}?token={ticket}", 1)
    assert messages[0]["type"] == "connection"
    messages, code = await first_messages(f"{n3.ws}/ws/vms/{vm}?token={ticket}", 1)
    assert messages[0]["type"] == "error" and messages[0]["data"]["code"] == "AUTH_ERROR"
    assert code == 4001


@pytest.mark.asyncio
async def test_redis_down_tickets_fail_clearly_plain_tokens_still_work_then_it_comes_back(
    tmp_path: Path, redis_server: Any, start_nodes: Any
) -> None:
    (node,) = start_nodes(1, redis_url=redis_server.url, shard=False)
    _, bought = http("POST", node.http + "/api/tickets", token())
    redis_server.stop()
    status, body = http("POST", node.http + "/api/tickets", token())
    assert status == 503
    assert body["error"]["code"] == "UNKNOWN_ERROR" and "Redis is unreachable" in body["error"]["message"]
    messages, code = await first_messages(f"{node.ws}/ws/vms/my-vm?token={bought['ticket']}", 1)
    assert messages[0]["type"] == "error" and code == 1013
    messages, _ = await first_messages(f"{node.ws}/ws/vms/my-vm?token={token()}", 1)
    assert messages[0]["type"] == "connection"  # its own VMs, plain token: still served
    assert http("GET", node.http + "/api/cluster", token("read"))[1]["redis"]["state"] == "down"
    revived = start_redis(tmp_path / "redis2", port=redis_server.port)
    try:
        deadline = time.monotonic() + 30
        while http("POST", node.http + "/api/tickets", token())[0] != 201:
            assert time.monotonic() < deadline, "tickets did not come back after Redis did"
            await asyncio.sleep(0.2)
        cluster = http("GET", node.http + "/api/cluster", token("read"))[1]
        while cluster["redis"]["state"] != "up" or not cluster["nodes"]:
            assert time.monotonic() < deadline, "the node did not re-register"
            await asyncio.sleep(0.2)
            cluster = http("GET", node.http + "/api/cluster", token("read"))[1]
    finally:
        revived.stop()
    log = node.log()
    assert "Traceback" not in log  # (the access log marks the 503 itself as ERROR: a server-side outage)


def test_api_cluster_lists_live_nodes_and_a_restarted_node_replaces_its_dead_incarnation(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    status, body = http("GET", nodes[1].http + "/api/cluster", token("read"))
    assert status == 200 and body["node"] == "node-2" and body["redis"]["state"] == "up"
    listed = {n["name"]: n for n in body["nodes"]}
    assert sorted(listed) == ["node-1", "node-2", "node-3"]
    assert sum(n["vms"] for n in listed.values()) == len(demo_fleet().vms)
    assert [n["name"] for n in body["nodes"] if n["self"]] == ["node-2"]
    old = listed["node-1"]["incarnation"]
    nodes[0].kill()  # its liveness key stays for up to 10 s
    nodes[0].start()  # registered before it listens: at once, no wait for the TTL
    again = {n["name"]: n for n in http("GET", nodes[2].http + "/api/cluster", token("read"))[1]["nodes"]}
    assert again["node-1"]["incarnation"] != old
    assert vms_of(nodes[0]) == sorted(vms_of(nodes[0]))  # and it serves its shard again
    assert vms_of(nodes[0])


def test_api_cluster_needs_read_and_works_alone(start_nodes: Any) -> None:
    (node,) = start_nodes(1, shard=False)
    assert http("GET", node.http + "/api/cluster")[0] == 401
    assert http("GET", node.http + "/api/cluster", token("console"))[0] == 403
    status, body = http("GET", node.http + "/api/cluster", token("read"))
    assert status == 200 and body["redis"]["state"] == "none"
    assert body["nodes"] == [{**body["nodes"][0], "name": "node-1", "vms": 10, "self": True}]


def test_the_redis_password_is_never_logged_or_shown(redis_server: Any, start_nodes: Any) -> None:
    url = f"redis://default:hunter2-secret@127.0.0.1:{redis_server.port}/0"
    # Redis has no password here: the node's AUTH fails, it keeps serving and says so
    (node,) = start_nodes(1, redis_url=url, shard=False)
    body = http("GET", node.http + "/api/cluster", token("read"))[1]
    assert body["redis"]["url"] == f"redis://default:***@127.0.0.1:{redis_server.port}/0"
    assert "hunter2" not in json.dumps(body) and "hunter2" not in node.log()


def test_a_flood_of_refused_messages_through_redis_is_logged_a_few_times_not_each(
    redis_server: Any, start_nodes: Any
) -> None:
    (node,) = start_nodes(1, redis_url=redis_server.url, shard=False)
    flood = "for i = 1, 500 do redis.call('publish', KEYS[1], 'not json\\n') end"
    redis_server.cli("eval", flood, "1", "vmws:node:node-1:reply")
    assert http("GET", node.http + "/api/cluster", token("read"))[0] == 200  # it goes on serving
    deadline = time.monotonic() + 10
    while "header is not JSON" not in node.log():
        assert time.monotonic() < deadline, "the refused messages were not logged at all"
        time.sleep(0.1)
    time.sleep(0.5)  # the rest of the flood has been read
    lines = [line for line in node.log().splitlines() if "header is not JSON" in line]
    assert len(lines) == 5, lines[:10]
