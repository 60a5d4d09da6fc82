"""Console epochs on one node (no Redis): the same protocol as a cluster's."""

from __future__ import annotations

import pytest

from tests.e2e.client import client, running_server
from tests.e2e.test_console import login

pytestmark = pytest.mark.asyncio


async def test_connection_and_every_console_message_carry_one_stable_epoch() -> None:
    async with running_server() as server:
        async with client(server, "web-1", console=True) as c:
            epoch = (await c.recv("connection"))["data"]["epoch"]
            await login(c, "web-1")
            await c.send("console_input", {"content": "echo marker-1\n"})
            seen = []
            while True:
                data = (await c.recv("console"))["data"]
                seen.append(data["epoch"])
                if "marker-1\r\n" in data["content"]:
                    break
            assert set(seen) == {epoch}
        async with client(server, "web-1", console=True) as again:  # the process lives: same epoch
            assert (await again.recv("connection"))["data"]["epoch"] == epoch


async def test_resume_with_the_current_epoch_is_since_and_a_stale_epoch_gets_all_held_history() -> None:
    async with running_server() as server:
        async with client(server, "web-1", console=True) as c:
            epoch = (await c.recv("connection"))["data"]["epoch"]
            first = (await c.recv("console"))["data"]
            await login(c, "web-1")
            await c.send("console_input", {"content": "echo resume-here\n"})
            text = await c.read_console_until("resume-here\r\n")
            end = first["offset"] + len((first["content"] + text).encode())
        async with client(server, "web-1", console=True, since=str(end - 5), epoch=epoch) as same:
            assert (await same.recv("connection"))["data"]["epoch"] == epoch
            data = (await same.recv("console"))["data"]
            assert data["offset"] == end - 5
        async with client(server, "web-1", console=True, since=str(end - 5), epoch="0123456789abcdef") as stale:
            assert (await stale.recv("connection"))["data"]["epoch"] == epoch
            data = (await stale.recv("console"))["data"]
            assert data["offset"] == first["offset"] and data["epoch"] == epoch  # everything held, new epoch


async def test_a_malformed_epoch_is_refused_with_1008() -> None:
    async with running_server() as server:
        async with client(server, "web-1", console=True, epoch="not an epoch!") as bad:
            error = await bad.recv("error")
            assert error["data"]["code"] == "INVALID_COMMAND" and "'epoch'" in error["data"]["message"]
            assert (await bad.closed())[0] == 1008
