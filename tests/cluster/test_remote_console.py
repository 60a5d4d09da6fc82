"""A console followed from another node (``RemoteConsole``, unit tests with a stand-in
relay): the owner's output queued here unread stays bounded."""

from __future__ import annotations

from typing import Any

import pytest

from vmws.cluster.backend import FOLLOW_LIMIT_BYTES, RemoteConsole
from vmws.cluster.wire import MAX_DATA_BYTES

pytestmark = pytest.mark.asyncio


class _Redis:
    async def xrange(self, key: str, first: str, last: str) -> list[Any]:
        return []  # no history held: the copy starts at the owner's offset


class _Relay:
    redis = _Redis()

    async def request(self, vm: str, header: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        assert header["op"] == "open"
        return {"ok": True, "o": 0, "e": "epoch-1"}


async def _joined() -> tuple[RemoteConsole, list[str], list[RemoteConsole]]:
    lost: list[str] = []
    closed: list[RemoteConsole] = []
    console = RemoteConsole("web-1", _Relay(), closed.append)  # type: ignore[arg-type]
    console.lost = lost.append
    await console.join(timeout=1)
    return console, lost, closed


def _batch(offset: int) -> tuple[dict[str, Any], bytes]:
    return {"op": "console", "o": offset, "e": "epoch-1"}, b"y\n" * (MAX_DATA_BYTES // 2)


async def test_output_read_as_it_comes_is_never_cut_off() -> None:
    console, lost, _ = await _joined()
    for n in range(3 * FOLLOW_LIMIT_BYTES // MAX_DATA_BYTES):
        console.feed(*_batch(n * MAX_DATA_BYTES))
        assert len(await console.read()) == MAX_DATA_BYTES
    assert lost == [] and console.end == 3 * FOLLOW_LIMIT_BYTES


async def test_output_nobody_reads_ends_the_copy_past_the_limit_and_is_freed() -> None:
    console, lost, closed = await _joined()
    batches = FOLLOW_LIMIT_BYTES // MAX_DATA_BYTES
    for n in range(batches):  # exactly the limit: still held
        console.feed(*_batch(n * MAX_DATA_BYTES))
    assert lost == []
    console.feed(*_batch(batches * MAX_DATA_BYTES))  # one byte more would not fit
    assert len(lost) == 1 and "'web-1'" in lost[0] and "?since=" in lost[0], lost
    assert closed == [console]
    assert await console.read() == b""  # what was queued is dropped: the viewers resume from Redis
    console.feed(*_batch((batches + 1) * MAX_DATA_BYTES))  # later output is ignored
    assert await console.read() == b"" and len(lost) == 1
