"""A console's history held in Redis is the owner's whole scrollback, also after one
batch of output longer than the scrollback: a viewer joining on another node gets what
a viewer joining on the owner gets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from .conftest import Node, token
from .test_relay import owned_by

pytestmark = pytest.mark.xdist_group("cluster")

SEQ = 150_000  # ≈ 1 MB: the simulator prints it in one or two reads of the console


async def _send(ws: Any, content: str) -> None:
    await ws.send(
        json.dumps({"type": "console_input", "timestamp": "2023-05-23T12:34:56Z", "data": {"content": content}})
    )


async def _read_until(ws: Any, needle: str, timeout: float = 60) -> tuple[int | None, str]:
    """Console output until ``needle`` ends it: (offset of the first console message, text)."""
    first, text = None, ""
    async with asyncio.timeout(timeout):
        while not text.endswith(needle):
            message = json.loads(await ws.recv())
            if message["type"] == "console" and message["data"]["content"]:
                if first is None:
                    first = message["data"]["offset"]
                text += message["data"]["content"]
    return first, text


async def _login(ws: Any, prompt: str) -> None:
    await _send(ws, "\n")
    await _read_until(ws, "login: ")
    await _send(ws, "admin\n")
    await _read_until(ws, "Password: ")
    await _send(ws, "admin\n")
    await _read_until(ws, prompt)


async def _history(node: Node, vm: str, end: str) -> tuple[int | None, str]:
    async with websockets.connect(f"{node.ws}/ws/vms/{vm}/console?token={token()}", max_size=None) as ws:
        return await _read_until(ws, end)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_join_on_another_node_gets_the_whole_scrollback_after_a_flood(
    redis_server: Any, start_nodes: Any
) -> None:
    owner, other = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by([owner, other], owner)
    prompt = f"admin@{vm}:~$ "
    async with websockets.connect(f"{owner.ws}/ws/vms/{vm}/console?token={token()}", max_size=None) as ws:
        await _login(ws, prompt)
        await _send(ws, f"seq 1 {SEQ}\n")
        await _read_until(ws, f"\r\n{SEQ}\r\n{prompt}")
    end = f"\r\n{SEQ}\r\n{prompt}"
    # the other node opens its copy of the console now, from the history held in Redis
    elsewhere = await _history(other, vm, end)
    on_owner = await _history(owner, vm, end)
    assert len(on_owner[1]) > 60_000  # the owner's scrollback: 64 KiB
    assert elsewhere == on_owner, (len(elsewhere[1]), len(on_owner[1]), elsewhere[0], on_owner[0])
    # and Redis holds about the scrollback: 64 KiB in 16 KiB entries, plus at most one
    # more entry and the stream's own structures, not the 1 MB printed
    entries = redis_server.cli("xlen", f"vmws:vm:{{{vm}}}:con")
    size = int(redis_server.cli("memory", "usage", f"vmws:vm:{{{vm}}}:con", "samples", "0"))
    assert 0 < int(entries) <= 6 and size < 128 * 1024, (entries, size)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_viewers_that_fall_far_behind_on_another_node_are_cut_off_and_watchers_stay(
    redis_server: Any, start_nodes: Any
) -> None:
    """The owner does not wait for other nodes' viewers: a viewer there that stops reading
    ends that node's copy of the console (1013, resume with ?since=), not its memory."""
    owner, other = start_nodes(2, redis_url=redis_server.url)
    vm = owned_by([owner, other], owner)
    prompt = f"admin@{vm}:~$ "
    url = f"/ws/vms/{vm}?token={token()}"
    async with (
        websockets.connect(f"{owner.ws}/ws/vms/{vm}/console?token={token()}", max_size=None) as typist,
        websockets.connect(f"{other.ws}{url}", max_size=None) as watcher,
        # max_queue=1: the client stops reading its socket after one message, so this
        # viewer's node soon has every byte it may send it unsent and stops reading.
        websockets.connect(f"{other.ws}/ws/vms/{vm}/console?token={token()}", max_size=None, max_queue=1) as stalled,
    ):
        await _login(typist, prompt)
        await _send(typist, "yes\n")
        # The typist takes 32 MiB of the flood (the owner's pace) while the stalled viewer
        # reads nothing: its node falls far more than 4 MiB behind.
        received = 0
        async with asyncio.timeout(60):
            while received < 32 * 2**20:
                message = json.loads(await typist.recv())
                received += len(message["data"].get("content", "")) if message["type"] == "console" else 0
        await _send(typist, "\x03")
        closed: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while not closed:
                try:
                    await stalled.recv()  # what its node had sent it, then the close
                except websockets.ConnectionClosed as exc:
                    closed = {"code": exc.rcvd.code if exc.rcvd else None}
        assert closed == {"code": 1013}
        # the VM's watcher on the same node was not closed: it still gets a heartbeat answered
        await watcher.send(json.dumps({"type": "heartbeat", "timestamp": "2023-05-23T12:34:56Z", "data": {}}))
        async with asyncio.timeout(30):
            while json.loads(await watcher.recv())["type"] != "heartbeat":
                pass
