"""Console presence over real sockets: the ``viewers`` list on join and leave,
watch-only sessions (``?mode=watch``) and ``watch`` tokens whose input is refused."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import Client, client, running_server, token, ws_url
from tests.e2e.test_console import login

pytestmark = pytest.mark.asyncio


def who(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["user"], v["mode"]) for v in message["data"]["viewers"]]


async def next_viewers(c: Client) -> list[tuple[str, str]]:
    return who(await c.recv("viewers"))


async def test_every_viewer_gets_the_full_list_when_one_joins_or_leaves() -> None:
    async with running_server() as server, client(server, "web-1", console=True) as a:
        assert (await a.recv())["type"] == "connection"
        first = await a.recv("viewers")
        assert who(first) == [("alice", "interactive")]
        assert first["data"]["viewers"][0]["joinedAt"].endswith("Z")
        async with client(server, "web-1", console=True, tok=token(sub="bob"), mode="watch") as b:
            expected = [("alice", "interactive"), ("bob", "watch")]
            assert await next_viewers(b) == expected
            assert await next_viewers(a) == expected
        assert await next_viewers(a) == [("alice", "interactive")]


async def test_watch_mode_input_is_refused_and_never_reaches_the_guest() -> None:
    async with running_server() as server, client(server, "web-2", console=True) as typist:
        await login(typist, "web-2")
        async with client(server, "web-2", console=True, tok=token(sub="bob"), mode="watch") as watcher:
            await watcher.recv("viewers")
            await watcher.send("console_input", {"content": "echo watched-marker\n"})
            error = (await watcher.recv("error"))["data"]
            assert error["code"] == "AUTH_ERROR" and "?mode=watch" in error["message"]
            await typist.send("console_input", {"content": "echo typed-marker\n"})
            seen = await typist.read_console_until("\ntyped-marker")
            assert "watched-marker" not in seen
            assert "typed-marker" in await watcher.read_console_until("\ntyped-marker")  # a watcher sees output
            await watcher.send("heartbeat", {"ping": 1})
            assert (await watcher.recv("heartbeat"))["data"] == {"ping": 1}  # the connection stays


async def test_a_watch_token_is_watch_only_whatever_the_query_says() -> None:
    async with running_server() as server:
        async with client(server, "web-3", console=True, tok=token(["watch"], sub="carol"), mode="interactive") as c:
            connection = (await c.recv("connection"))["data"]
            assert connection["permissions"] == ["watch"]
            assert await next_viewers(c) == [("carol", "watch")]
            await c.send("console_input", {"content": "\n"})
            error = (await c.recv("error"))["data"]
            assert error["code"] == "AUTH_ERROR" and "'watch'" in error["message"]


async def test_console_refusals_for_watch_and_mode() -> None:
    async with running_server() as server:
        async with client(server, "web-3", console=True, tok=token(["read"])) as c:
            assert (await c.recv())["data"]["code"] == "AUTH_ERROR"
            assert (await c.closed())[0] == 4003
        async with client(server, "web-3", console=True, tok=token(["watch"], vms=["db-*"])) as c:
            assert (await c.recv())["data"]["code"] == "AUTH_ERROR"
            assert (await c.closed())[0] == 4003
        async with client(server, "web-3", console=True, mode="spectate") as c:
            error = (await c.recv())["data"]
            assert error["code"] == "INVALID_COMMAND" and "'mode'" in error["message"]
            assert (await c.closed())[0] == 1008
        async with client(server, "web-3", tok=token(["watch"])) as c:  # watch is not read
            assert (await c.recv())["data"]["code"] == "AUTH_ERROR"
            assert (await c.closed())[0] == 4003


async def test_a_viewer_that_vanishes_leaves_the_list() -> None:
    async with running_server() as server, client(server, "web-4", console=True) as a:
        await a.recv("viewers")
        async with connect(ws_url(server, "web-4", console=True, tok=token(sub="bob"))) as b:
            await Client(b).recv("viewers")
            assert await next_viewers(a) == [("alice", "interactive"), ("bob", "interactive")]
            b.transport.abort()  # gone without a close frame
            assert await next_viewers(a) == [("alice", "interactive")]
