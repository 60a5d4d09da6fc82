"""Console viewer caps hold across the cluster (counted in Redis), over real nodes: a
seat taken on one node counts on every other; a leaving viewer frees it; a dead node's
viewers age out; without Redis each node still holds its own count."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets

from loadtests.cluster_procs import start_redis
from vmws.cluster.viewer_caps import seats_key

from .conftest import Node, token
from .test_relay import owned_by, recv

pytestmark = pytest.mark.xdist_group("cluster")


def console(node: Node, vm: str, sub: str) -> Any:
    return websockets.connect(f"{node.ws}/ws/vms/{vm}/console?token={token('console', sub=sub)}")


async def seated(ws: Any) -> None:
    """The socket got in: its first message is ``connection``."""
    first = json.loads(await asyncio.wait_for(ws.recv(), 15))
    assert first["type"] == "connection", first


async def refused(node: Node, vm: str, sub: str) -> str:
    """Open a console socket that must be refused with 4029; the error's message."""
    async with console(node, vm, sub) as ws:
        error = await recv(ws, "error")
        await asyncio.wait_for(ws.wait_closed(), 15)
    assert error["data"]["code"] == "AUTH_ERROR" and ws.close_code == 4029, (error, ws.close_code)
    return str(error["data"]["message"])


async def admitted_within(node: Node, vm: str, sub: str, seconds: float) -> tuple[Any, float]:
    """Try until a socket gets in (refusals meanwhile are 4029); it, and how long it took."""
    began = time.monotonic()
    while True:
        ws = await console(node, vm, sub)
        first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if first["type"] == "connection":
            return ws, time.monotonic() - began
        assert first["data"]["code"] == "AUTH_ERROR", first
        await ws.close()
        assert time.monotonic() - began < seconds, f"still refused after {seconds}s"
        await asyncio.sleep(0.2)


def cluster(start_nodes: Any, redis_url: str, *flags: str, n: int = 3, owner: int = 0) -> tuple[list[Node], str]:
    """``n`` nodes started with ``flags``, and a running VM owned by node ``owner``."""
    nodes = start_nodes(n, *flags, redis_url=redis_url)
    return nodes, owned_by(nodes, nodes[owner])


@pytest.mark.asyncio
async def test_a_cap_of_two_holds_across_three_nodes_and_a_leaving_viewer_frees_its_seat(
    redis_server: Any, start_nodes: Any
) -> None:
    (n1, n2, n3), vm = cluster(start_nodes, redis_server.url, "--max-console-viewers", "2")
    async with console(n1, vm, "alice") as first, console(n2, vm, "bob") as second:
        await seated(first)
        await seated(second)
        assert await refused(n3, vm, "carol") == "too many viewers on this console (limit 2)"
        assert await refused(n1, vm, "carol") == "too many viewers on this console (limit 2)"
        await first.close()
        # The seat is given back as the socket closes; a new viewer gets it.
        newcomer, took = await admitted_within(n3, vm, "carol", 5)
        print(f"seat free on node-3 {took:.2f}s after node-1's viewer left")
        async with newcomer:
            assert await refused(n2, vm, "dave") == "too many viewers on this console (limit 2)"


@pytest.mark.asyncio
async def test_the_per_user_cap_holds_across_nodes_and_other_users_still_get_in(
    redis_server: Any, start_nodes: Any
) -> None:
    (n1, _, n3), vm = cluster(start_nodes, redis_server.url, "--max-console-viewers-per-user", "1", owner=1)
    async with console(n1, vm, "alice") as mine:
        await seated(mine)
        message = await refused(n3, vm, "alice")
        assert message == "too many console viewers for this user on this VM (limit 1 per user)"
        async with console(n3, vm, "bob") as other:
            await seated(other)


@pytest.mark.asyncio
async def test_a_killed_nodes_viewers_age_out_of_the_count(redis_server: Any, start_nodes: Any) -> None:
    (_, n2, n3), vm = cluster(start_nodes, redis_server.url, "--max-console-viewers", "1")
    async with console(n2, vm, "alice") as doomed:
        await seated(doomed)
        n2.kill()  # no close reaches Redis: the seat stays until its expiry
    assert await refused(n3, vm, "bob") == "too many viewers on this console (limit 1)"
    viewer, took = await admitted_within(n3, vm, "bob", 20)
    print(f"a killed node's seat aged out after {took:.1f}s (seat TTL 10s, refreshed every 3s)")
    await viewer.close()


@pytest.mark.asyncio
async def test_without_redis_each_node_holds_its_own_count_and_the_seats_reach_redis_when_it_is_back(
    tmp_path: Path, redis_server: Any, start_nodes: Any
) -> None:
    (n1, n2), vm = cluster(start_nodes, redis_server.url, "--max-console-viewers", "1", n=2)
    redis_server.stop()
    async with console(n1, vm, "alice") as first:
        await seated(first)  # Redis cannot count it: the node's own count admits it
        assert await refused(n1, vm, "bob") == "too many viewers on this console (limit 1)"
        log = n1.log()
        assert "console viewer caps counted on this node only: Redis is unreachable" in log
        # Redis comes back empty: node-1's refresh writes the seat taken meanwhile, so
        # node-2 (once it follows the VM again) refuses a second viewer.
        again = start_redis(tmp_path / "redis-again", port=redis_server.port)
        try:
            seats = redis.Redis.from_url(redis_server.url)
            deadline = time.monotonic() + 15
            while not seats.zcard(seats_key(vm)):
                assert time.monotonic() < deadline, "node-1's seat never reached Redis"
                await asyncio.sleep(0.2)
            seats.close()
            deadline = time.monotonic() + 30
            while True:
                async with console(n2, vm, "bob") as ws:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    await asyncio.wait_for(ws.wait_closed(), 15)
                assert message["type"] == "error", message  # never seated: the seat is node-1's
                if ws.close_code == 4029:
                    break
                assert ws.close_code == 1013, (message, ws.close_code)  # the relay is not back yet
                assert time.monotonic() < deadline, "node-2 never saw node-1's seat"
                await asyncio.sleep(0.5)
        finally:
            again.stop()
    log = n1.log()
    assert "console viewer caps hold across the cluster again" in log
    assert "Traceback" not in log
