"""``GET /api/audit`` on a cluster: the events of every node, from any node (real Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cluster.test_revocations import node
from tests.e2e.client import client, token
from tests.e2e.test_audit import AUDITOR, audit, http

pytestmark = pytest.mark.asyncio


async def test_any_node_answers_with_the_events_of_every_node(redis_server: Any) -> None:
    async with node(redis_server.url, "node-1") as n1, node(redis_server.url, "node-2") as n2:
        async with client(n1, "my-vm", tok=token(sub="on-one")) as c:
            await c.command("start", "cluster-a1")
        assert (await http(n2, "POST", "/api/tickets", tok=token(sub="on-two"), body=b""))[0] == 201
        expected = {("node-1", "command", "on-one"), ("node-2", "ticket_issued", "on-two")}
        for asked in (n1, n2):
            async with asyncio.timeout(10):  # each node pushes its events in the background
                while {(e["node"], e["kind"], e["user"]) for e in await audit(asked)} != expected:
                    await asyncio.sleep(0.05)
        assert [e["user"] for e in await audit(n2, user="on-one")] == ["on-one"]
        redis_server.stop()
        status, body = await http(n1, "GET", "/api/audit", tok=AUDITOR)
        assert status == 503 and "every node" in body["error"]["message"]
