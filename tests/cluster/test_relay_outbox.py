"""The relay's outbox against a real Redis: one order, replies to futures, a refused
command in the middle, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from loadtests.cluster_procs import start_redis
from vmws.cluster.node import connect_redis
from vmws.cluster.relay import Relay, RelayUnavailable

pytestmark = pytest.mark.xdist_group("cluster")


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@pytest.mark.asyncio
async def test_a_batch_keeps_its_order_and_every_reply_even_after_a_refused_command(redis_server: Any) -> None:
    redis = connect_redis(redis_server.url)
    relay = Relay(redis, "node-t")
    await relay.start()
    try:
        results = [_future() for _ in range(5)]
        relay.enqueue("xadd", "s", {"d": b"a"}, id="5-1", result=results[0])
        relay.enqueue("xadd", "s", {"d": b"b"}, id="3-1", result=results[1])  # older id: refused
        relay.enqueue("hset", "h", mapping={"status": "running"}, result=results[2])
        relay.enqueue("publish", "vmws:nobody", b"x", result=results[3])
        relay.enqueue("delete", "h", result=results[4])
        first, refused, hset, receivers, deleted = await asyncio.gather(*results, return_exceptions=True)
        assert first == b"5-1"
        assert isinstance(refused, ResponseError)
        assert (hset, receivers, deleted) == (1, 0, 1)
        assert await redis.xlen("s") == 1
        # the same connection goes on in step with its replies
        again = _future()
        relay.enqueue("publish", "vmws:nobody", b"y", result=again)
        assert await again == 0
    finally:
        await relay.stop()
        await redis.aclose()


@pytest.mark.asyncio
async def test_redis_away_fails_the_batch_and_the_outbox_reconnects_when_it_is_back(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    redis = connect_redis(server.url)
    relay = Relay(redis, "node-t")
    await relay.start()
    try:
        warm = _future()
        relay.enqueue("publish", "vmws:nobody", b"x", result=warm)
        assert await warm == 0
        port = server.port
        server.stop()
        lost = _future()
        relay.enqueue("publish", "vmws:nobody", b"x", result=lost)
        with pytest.raises(RelayUnavailable):
            await asyncio.wait_for(lost, 10)
        assert relay.up_for() == 0.0  # the relay knows Redis is away
        server = start_redis(tmp_path / "redis-again", port=port)
        back = _future()
        relay.enqueue("publish", "vmws:nobody", b"x", result=back)
        assert await asyncio.wait_for(back, 10) == 0
    finally:
        await relay.stop()
        await redis.aclose()
        server.stop()
