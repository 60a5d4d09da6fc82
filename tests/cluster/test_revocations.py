"""Revocations across nodes on a real Redis: a revocation on one node closes the
matching sessions on another at once, refuses new ones there, and a node started
later learns the entries in force."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.client import client, running_server, token
from tests.e2e.test_audit import audit, http
from vmws.app import Server

pytestmark = pytest.mark.asyncio

ADMIN = token(["admin"], sub="root")


@contextlib.asynccontextmanager
async def node(redis_url: str, name: str) -> AsyncIterator[Server]:
    async with running_server(redis_url=redis_url, node_name=name) as server:
        yield server


async def refused(server: Server, tok: str) -> bool:
    return (await http(server, "GET", "/api/vms", tok=tok))[0] == 401


async def test_a_revocation_on_one_node_closes_sessions_and_refuses_credentials_on_every_node(
    redis_server: Any,
) -> None:
    mallory = token(sub="mallory")
    async with node(redis_server.url, "node-1") as n1, node(redis_server.url, "node-2") as n2:
        async with client(n2, "my-vm", tok=mallory) as elsewhere, client(n2, "my-vm", tok=token(sub="bob")) as bob:
            await elsewhere.recv("connection")
            await bob.recv("connection")
            status, body = await http(
                n1, "POST", "/api/revocations", tok=ADMIN, body={"sub": "mallory", "expiresIn": 600}
            )
            assert status == 201 and body["sessionsClosed"] == 0  # none on node-1 itself
            assert "revoked" in (await elsewhere.recv("error"))["data"]["message"]
            assert (await elsewhere.closed())[0] == 4001
            assert (await bob.command("start", "bob-still-here"))["success"] is True
        assert await refused(n1, mallory) and await refused(n2, mallory)
        # Each node audits what it did (the audit of a cluster holds both, from any node).
        expected = {("root", "mallory", 0, "node-1"), ("root", "mallory", 1, "node-2")}
        async with asyncio.timeout(10):
            while {
                (e["user"], e["sub"], e["sessionsClosed"], e["node"])
                for e in await audit(n2)
                if e["kind"] == "revocation"
            } != expected:
                await asyncio.sleep(0.05)
        # A node that joins afterwards reads the entries in force from Redis.
        async with node(redis_server.url, "node-3") as n3:
            async with asyncio.timeout(10):
                while not await refused(n3, mallory):
                    await asyncio.sleep(0.05)
            assert not await refused(n3, token(sub="bob"))


async def test_with_redis_away_a_revocation_holds_on_its_node_and_says_the_others_were_not_reached(
    redis_server: Any,
) -> None:
    async with node(redis_server.url, "node-1") as n1:
        redis_server.stop()
        status, body = await http(n1, "POST", "/api/revocations", tok=ADMIN, body={"sub": "mallory", "expiresIn": 60})
        assert status == 503 and "this node only" in body["error"]["message"]
        assert await refused(n1, token(sub="mallory"))
