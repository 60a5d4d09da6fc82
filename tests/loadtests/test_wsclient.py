"""The lean benchmark client against the real baseline server (real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from loadtests.procs import ServerProcess, start_baseline
from loadtests.wsclient import Connection, connect, connect_many


@pytest.fixture
def baseline(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_baseline(tmp_path / "baseline.log", heartbeat_interval=0.2, broadcast_interval=0.1)
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_echo_round_trip_with_arrival_times(baseline: ServerProcess) -> None:
    received: list[tuple[bytes, float]] = []
    conn = await connect(f"{baseline.base_url}/echo", lambda c, p, t: received.append((p, t)))
    conn.send_text(orjson.dumps({"type": "console_input", "data": {"content": "héllo"}}))
    async with asyncio.timeout(5):
        while not received:
            await asyncio.sleep(0.01)
    message = orjson.loads(received[0][0])
    assert message["type"] == "console" and message["data"]["content"] == "héllo"
    assert received[0][1] > 0
    conn.close()
    assert await asyncio.wait_for(conn.closed, 5) is None or conn.close_code in (1000, 1005)


@pytest.mark.asyncio
async def test_large_frames_are_counted_without_a_handler(baseline: ServerProcess) -> None:
    conn = await connect(f"{baseline.base_url}/relay")  # 64 KiB reads as JSON, nonstop
    await asyncio.sleep(0.5)
    assert conn.messages > 5
    # every relay message is one 64 KiB read escaped: well over 64 KiB on the wire
    assert conn.bytes_received > conn.messages * 64 * 1024 * 0.9
    conn.close()


@pytest.mark.asyncio
async def test_pings_are_answered_and_broadcasts_reach_every_connection(baseline: ServerProcess) -> None:
    counts: dict[int, int] = {}

    def count(c: Connection, payload: bytes, arrived: float) -> None:
        if b'"metrics"' in payload:
            counts[id(c)] = counts.get(id(c), 0) + 1

    conns = await connect_many([f"{baseline.base_url}/broadcast"] * 20, count, concurrency=5)
    await asyncio.sleep(0.8)
    assert len(counts) == 20 and min(counts.values()) >= 3
    assert all(c.pings >= 1 and c.is_open for c in conns)
    for c in conns:
        c.close()
