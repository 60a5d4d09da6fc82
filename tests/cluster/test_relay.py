"""Any node serves any VM: the relay through Redis over real nodes and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from loadtests.cluster_procs import start_redis
from simulator.scenario import demo_fleet

from .conftest import Node, token
from .test_cluster import http

pytestmark = pytest.mark.xdist_group("cluster")


def listing(node: Node) -> dict[str, dict[str, Any]]:
    status, body = http("GET", node.http + "/api/vms", token("read"))
    assert status == 200
    return {vm["name"]: vm for vm in body["vms"]}


async def recv(ws: Any, kind: str, timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


def connect(node: Node, vm: str, suffix: str = "", *, sub: str = "alice") -> Any:
    """A socket to ``vm`` on ``node`` (``suffix``: ``/console``)."""
    return websockets.connect(f"{node.ws}/ws/vms/{vm}{suffix}?token={token(sub=sub)}")


def owned_by(nodes: list[Node], node: Node, status: str = "running") -> str:
    return next(name for name, vm in listing(nodes[0]).items() if vm["node"] == node.name and vm["status"] == status)


def test_every_node_lists_every_vm_of_the_cluster_with_its_node(redis_server: Any, start_nodes: Any) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    everything = {vm.name for vm in demo_fleet().vms}
    seen = [listing(node) for node in nodes]
    for vms in seen:
        assert set(vms) == everything
        assert vms == seen[0]
    assert {vm["node"] for vm in seen[0].values()} == {"node-1", "node-2", "node-3"}


@pytest.mark.asyncio
async def test_a_command_from_node_2_on_a_vm_of_node_1_answers_on_2_and_node_3_sees_the_status(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with connect(nodes[2], vm) as watcher, connect(nodes[1], vm) as commander:
        assert (await recv(watcher, "connection"))["data"]["vm"] == vm
        assert (await recv(watcher, "status"))["data"]["status"] == "running"
        await recv(watcher, "metrics")
        await recv(watcher, "metrics")  # metrics keep coming from the owner
        await recv(commander, "status")
        await commander.send(
            json.dumps(
                {
                    "type": "command",
                    "timestamp": "2023-05-23T12:34:56Z",
                    "data": {"action": "pause", "requestId": "r-42"},
                }
            )
        )
        response = (await recv(commander, "response"))["data"]
        assert response == {**response, "requestId": "r-42", "success": True, "status": "paused"}
        assert (await recv(watcher, "status"))["data"]["status"] == "paused"
        await commander.send(
            json.dumps(
                {
                    "type": "command",
                    "timestamp": "2023-05-23T12:34:56Z",
                    "data": {"action": "restart", "requestId": "r-43"},
                }
            )
        )
        refused = (await recv(commander, "response"))["data"]
        assert refused["requestId"] == "r-43" and not refused["success"] and refused["code"] == "VM_NOT_RUNNING"
    assert listing(nodes[2])[vm]["status"] == "paused"


class Viewer:
    """A console socket that keeps every console message by offset."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.chunks: dict[int, str] = {}
        self.epochs: set[str] = set()
        self.text = ""

    async def until(self, needle: str, timeout: float = 30) -> None:
        try:
            async with asyncio.timeout(timeout):
                while needle not in self.text:
                    data = (await recv(self.ws, "console", timeout))["data"]
                    self.chunks[data["offset"]] = data["content"]
                    self.epochs.add(data["epoch"])
                    self.text += data["content"]
        except TimeoutError:
            raise AssertionError(f"no {needle!r} in {timeout:g}s; got {self.text[-500:]!r}") from None

    async def type(self, content: str) -> None:
        await self.ws.send(
            json.dumps({"type": "console_input", "timestamp": "2023-05-23T12:34:56Z", "data": {"content": content}})
        )

    def transcript(self) -> tuple[int, bytes]:
        first, out = min(self.chunks), bytearray()
        for offset in sorted(self.chunks):
            assert offset == first + len(out), f"gap or overlap at {offset}"
            out += self.chunks[offset].encode()
        return first, bytes(out)


@pytest.mark.asyncio
async def test_console_viewers_on_two_nodes_share_offsets_input_once_and_resume_on_a_third(
    redis_server: Any, start_nodes: Any
) -> None:
    started = start_nodes(4, redis_url=redis_server.url)  # the owner, two viewers' nodes, a fresh one
    vm, owner = next((name, v["node"]) for name, v in sorted(listing(started[0]).items()) if v["status"] == "running")
    nodes = sorted(started, key=lambda node: node.name != owner)  # the owner first
    url = f"/ws/vms/{vm}/console?token={token()}"
    async with websockets.connect(nodes[1].ws + url) as ws_a, websockets.connect(nodes[2].ws + url) as ws_b:
        a, b = Viewer(ws_a), Viewer(ws_b)
        epoch = (await recv(ws_a, "connection"))["data"]["epoch"]
        assert (await recv(ws_b, "connection"))["data"]["epoch"] == epoch
        # (Each waits for the effect of the other's input before typing: input typed on two
        # nodes at the same moment reaches the owner in either order.)
        await a.until("login: ")  # the boot log, from the owner's history
        await a.type("admin\n")
        await b.until("Password: ")
        await b.type("admin\n")
        for viewer in (a, b):
            await viewer.until(f"admin@{vm}:~$ ")
        for n in range(10):  # both type, in turn: each line once, in the order sent
            viewer = a if n % 2 else b
            await viewer.type(f"echo line-{n}\n")
            await viewer.until(f"\r\nline-{n}\r\n")
        for viewer in (a, b):
            await viewer.until("\r\nline-9\r\n")
        first_a, text_a = a.transcript()
        first_b, text_b = b.transcript()
        common = max(first_a, first_b)
        end = min(first_a + len(text_a), first_b + len(text_b))
        assert end - common > 100
        assert text_a[common - first_a : end - first_a] == text_b[common - first_b : end - first_b]
        assert a.epochs == b.epochs == {epoch}
        echoed = [line for line in text_a.decode().split("\r\n") if line.startswith("line-")]
        assert echoed == [f"line-{n}" for n in range(10)]
        resume_at = first_a + text_a.index(b"echo line-5")
    # a node that never had this console reads the history from Redis; the owner from
    # its own scrollback: both resume byte for byte
    for node in (nodes[3], nodes[0]):
        async with websockets.connect(f"{node.ws}{url}&since={resume_at}&epoch={epoch}") as ws_c:
            c = Viewer(ws_c)
            await c.until("line-9\r\n")
            first_c, text_c = c.transcript()
            assert first_c == resume_at and c.epochs == {epoch}
            assert text_c == text_a[resume_at - first_a : resume_at - first_a + len(text_c)]


async def closing(ws: Any, timeout: float = 30) -> tuple[list[dict[str, Any]], int | None]:
    """Messages until the server closes, and the close code."""
    messages = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                messages.append(json.loads(await ws.recv()))
    return messages, ws.close_code


@pytest.mark.asyncio
async def test_kill_9_of_an_owner_closes_its_vms_sockets_elsewhere_with_1013_until_it_is_back(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    lost_vm = owned_by(nodes, nodes[0])
    other_vm = owned_by(nodes, nodes[2])
    async with (
        connect(nodes[1], lost_vm) as watcher,
        connect(nodes[2], lost_vm, "/console") as viewer,
        connect(nodes[1], other_vm) as bystander,
    ):
        await recv(watcher, "status")
        await recv(viewer, "connection")
        await recv(bystander, "status")
        nodes[0].kill()
        for ws in (watcher, viewer):
            messages, code = await closing(ws)
            errors = [m for m in messages if m["type"] == "error"]
            assert code == 1013 and errors and "node-1" in errors[-1]["data"]["message"]
        await recv(bystander, "metrics")  # the other VMs are untouched
        assert bystander.close_code is None
    async with connect(nodes[2], lost_vm) as refused:
        messages, code = await closing(refused)
        assert code == 1013 and messages[-1]["type"] == "error" and "node-1" in messages[-1]["data"]["message"]
    assert listing(nodes[1])[lost_vm] == {"name": lost_vm, "status": "error", "node": None}
    assert listing(nodes[1])[other_vm]["node"] == "node-3"
    nodes[0].start()  # same --node-name: its VMs are served again, from every node
    assert listing(nodes[1])[lost_vm]["node"] == "node-1"
    async with connect(nodes[2], lost_vm) as again:
        assert (await recv(again, "status"))["data"]["status"] == "running"
        await recv(again, "metrics")


@pytest.mark.asyncio
async def test_redis_stopped_and_restarted_under_load_nothing_crashes_and_the_relay_comes_back(
    tmp_path: Path, redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(3, redis_url=redis_server.url)
    remote_vm = owned_by(nodes, nodes[0])
    local_vm = owned_by(nodes, nodes[1])
    stop = asyncio.Event()

    async def load(node: Node, vm: str) -> int:
        """Watchers that reconnect whenever they are closed; counts messages received."""
        received = 0
        while not stop.is_set():
            with contextlib.suppress(websockets.ConnectionClosed, OSError, TimeoutError):
                async with connect(node, vm) as ws:
                    while not stop.is_set():
                        async with asyncio.timeout(2):
                            await ws.recv()
                        received += 1
            await asyncio.sleep(0.2)
        return received

    loads = [
        asyncio.create_task(load(node, vm)) for node in nodes[1:] for vm in (remote_vm, local_vm) for _ in range(3)
    ]
    await asyncio.sleep(2)
    redis_server.stop()
    async with connect(nodes[1], local_vm) as ws:
        assert (await recv(ws, "status"))["data"]["status"] == "running"  # its own VMs: still served
        await recv(ws, "metrics")
    async with connect(nodes[1], remote_vm) as ws:
        messages, code = await closing(ws)
        assert code == 1013 and messages[-1]["type"] == "error"
    await asyncio.sleep(3)
    revived = start_redis(tmp_path / "redis2", port=redis_server.port)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # cross-node service comes back by itself
            with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                async with connect(nodes[2], remote_vm) as ws:
                    await recv(ws, "status", timeout=5)
                    await recv(ws, "metrics", timeout=5)
                    break
            assert asyncio.get_running_loop().time() < deadline, "the relay did not come back after Redis"
            await asyncio.sleep(0.5)
        assert listing(nodes[2])[remote_vm]["node"] == "node-1"
    finally:
        stop.set()
        counts = await asyncio.gather(*loads)
        revived.stop()
    assert all(counts)
    for node in nodes:
        assert node.proc is not None and node.proc.poll() is None  # no node crashed
        assert "Traceback" not in node.log()


@pytest.mark.asyncio
async def test_a_node_stopped_cleanly_takes_its_vms_out_of_the_cluster_at_once(
    redis_server: Any, start_nodes: Any
) -> None:
    nodes = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with connect(nodes[1], vm) as watcher:
        await recv(watcher, "status")
        nodes[0].stop()
        messages, code = await closing(watcher, timeout=5)  # no wait for the liveness TTL
        assert code == 1013 and "node-1" in messages[-1]["data"]["message"]
    assert vm not in listing(nodes[1])


SLOW_FLEET = "".join(
    f"""
[[vm]]
name = "slow-{n}"
status = "running"
timings = {{ reboot_shutdown = "2s" }}
"""
    for n in range(1, 7)
)


@pytest.mark.asyncio
async def test_relayed_commands_keep_the_owners_cap_and_are_dropped_when_their_client_leaves(
    tmp_path: Path, redis_server: Any, start_nodes: Any
) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text(SLOW_FLEET, encoding="utf-8")
    nodes = start_nodes(2, "--scenario", str(scenario), "--speed", "1", redis_url=redis_server.url)
    vm = owned_by(nodes, nodes[0])
    async with connect(nodes[1], vm, sub="bob") as bob:
        await recv(bob, "status")
        async with connect(nodes[1], vm) as alice:
            await recv(alice, "status")
            for n in range(1, 7):
                await alice.send(
                    json.dumps(
                        {
                            "type": "command",
                            "timestamp": "2023-05-23T12:34:56Z",
                            "data": {"action": "restart", "requestId": f"a{n}"},
                        }
                    )
                )
            refused = [(await recv(alice, "error"))["data"] for _ in range(2)]
            assert [e["requestId"] for e in refused] == ["a5", "a6"]  # the cap, counted at the owner
            assert all("at most 4 per user per VM" in e["message"] for e in refused)
        # alice left with a1 running and a2-a4 waiting at the owner
        await bob.send(
            json.dumps(
                {"type": "command", "timestamp": "2023-05-23T12:34:56Z", "data": {"action": "pause", "requestId": "b1"}}
            )
        )
        try:
            answer = (await recv(bob, "response", timeout=30))["data"]
        except TimeoutError:
            raise AssertionError(nodes[0].log()[-3000:] + "\n---\n" + nodes[1].log()[-3000:]) from None
        assert answer["requestId"] == "b1" and answer["success"] is True and answer["status"] == "paused"
    log = nodes[0].log()
    assert "(a1) succeeded" in log
    for request_id in ("a2", "a3", "a4"):
        assert f"({request_id}) dropped: its sender left" in log and f"({request_id}) succeeded" not in log


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_node_follows_another_nodes_vm_while_it_has_sockets_on_it_and_not_after(
    redis_server: Any, start_nodes: Any
) -> None:
    """A node subscribes to a VM's ``:out`` for its sockets, keeps it while one is open
    (however long), and drops it once none is left (``FOLLOW_IDLE`` after the last lookup)."""
    from vmws.cluster.backend import FOLLOW_IDLE
    from vmws.cluster.membership import REFRESH_INTERVAL

    owner, other = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by([owner, other], owner)
    channel = f"vmws:vm:{{{vm}}}:out"

    def subscribers() -> int:
        return int(redis_server.cli("pubsub", "numsub", channel).split()[-1])

    assert subscribers() == 0
    async with connect(other, vm) as watcher:
        await recv(watcher, "status")
        assert subscribers() == 1
        await asyncio.sleep(FOLLOW_IDLE + 2 * REFRESH_INTERVAL)  # idle lookups, but a socket is open
        assert subscribers() == 1
        await recv(watcher, "metrics")  # still relayed
    async with asyncio.timeout(3 * REFRESH_INTERVAL):
        while subscribers():
            await asyncio.sleep(0.2)
    # and a new socket follows it again
    async with connect(other, vm) as watcher:
        await recv(watcher, "status")
        assert subscribers() == 1
