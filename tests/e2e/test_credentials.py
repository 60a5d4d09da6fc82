"""Credentials over real sockets: one expiry rule everywhere, tickets capped per
subject and never outliving their token, exact VM names in ``vms``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.e2e.client import SECRET, client, running_server, token
from vmws.app import Server
from vmws.auth import LEEWAY_SECONDS, mint_token

pytestmark = pytest.mark.asyncio


async def http(server: Server, path: str, tok: str, method: str = "GET") -> tuple[int, Any]:
    try:
        response = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{server.port}{path}",
            method=method,
            body=b"" if method == "POST" else None,
            headers={"Authorization": f"Bearer {tok}"},
        )
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    return response.code, json.loads(response.body)


async def test_a_token_past_the_leeway_is_refused_at_the_handshake_on_rest_and_for_tickets() -> None:
    stale = token(ttl=-20)  # exp 20 s ago: past the 10 s leeway
    async with running_server() as server:
        for console in (False, True):
            async with client(server, "my-vm", console=console, tok=stale) as c:
                first = await c.recv()  # refused before "connection", not just after it
                assert first["type"] == "error", first
                assert first["data"] == {"code": "AUTH_ERROR", "message": "token has expired"}
                assert (await c.closed())[0] == 4001
        for method, path in (("GET", "/api/vms"), ("POST", "/api/tickets")):
            status, body = await http(server, path, stale, method)
            assert status == 401 and body["error"]["message"] == "token has expired", (path, body)


async def test_a_token_within_the_leeway_is_accepted_everywhere() -> None:
    fresh_enough = token(ttl=-(LEEWAY_SECONDS - 5))  # exp 5 s ago
    async with running_server() as server:
        async with client(server, "my-vm", tok=fresh_enough) as c:
            assert (await c.recv())["type"] == "connection"
        assert (await http(server, "/api/vms", fresh_enough))[0] == 200
        assert (await http(server, "/api/tickets", fresh_enough, "POST"))[0] == 201


async def test_a_ticket_is_refused_once_its_token_has_expired() -> None:
    # The token is accepted until exp + leeway, 1-2 s from now; the ticket TTL is 30 s.
    now = time.time()
    tok = mint_token(SECRET, sub="alice", permissions=["read"], now=now, ttl=-(LEEWAY_SECONDS - 2))
    refused_from = int(now - (LEEWAY_SECONDS - 2)) + LEEWAY_SECONDS
    async with running_server(ticket_ttl=30) as server:
        status, body = await http(server, "/api/tickets", tok, "POST")
        assert status == 201
        assert 0 < body["expiresIn"] <= refused_from + 1 - now  # not the 30 s TTL: its token ends first
        await asyncio.sleep(refused_from - time.time() + 0.2)
        async with client(server, "my-vm", tok=body["ticket"]) as c:
            first = await c.recv()
            assert first["type"] == "error" and first["data"]["code"] == "AUTH_ERROR", first
            assert (await c.closed())[0] == 4001


async def test_one_subject_fills_its_100_tickets_and_another_still_gets_tickets() -> None:
    alice, bob = token(sub="alice"), token(sub="bob")
    async with running_server() as server:
        for _ in range(100):
            status, _ = await http(server, "/api/tickets", alice, "POST")
            assert status == 201
        status, body = await http(server, "/api/tickets", alice, "POST")
        assert status == 429
        assert body["error"]["code"] == "AUTH_ERROR" and "limit 100" in body["error"]["message"]
        status, body = await http(server, "/api/tickets", bob, "POST")
        assert status == 201 and body["ticket"].startswith("vmt_")
        # A ticket used frees its slot.
        async with client(server, "my-vm", tok=body["ticket"]) as c:
            assert (await c.recv())["type"] == "connection"


async def test_an_exact_vms_entry_reaches_only_that_name(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[vm]]\nname = "web[1]"\n\n[[vm]]\nname = "web1"\n')
    async with running_server(scenario=str(fleet)) as server:
        status, body = await http(server, "/api/vms", token(["read"], vms=["=web[1]"]))
        assert status == 200 and [vm["name"] for vm in body["vms"]] == ["web[1]"]
        async with client(server, "web1", tok=token(["read"], vms=["=web[1]"])) as c:
            first = await c.recv()
            assert first["data"]["code"] == "AUTH_ERROR" and (await c.closed())[0] == 4003
        async with client(server, "web[1]", tok=token(["read"], vms=["=web[1]"])) as c:
            assert (await c.recv())["type"] == "connection"


async def test_an_admitted_connection_no_longer_holds_its_token_in_the_request() -> None:
    # Kept for the connection's life it cost 0.8 KB per connection; the access line
    # (written before open) and later log lines show the URI redacted either way.
    secret_token = token()
    async with running_server() as server, client(server, "my-vm", console=True, tok=secret_token, mode="watch") as c:
        assert (await c.recv("connection"))["data"]["user"] == "alice"
        (peer,) = server.hub.peers
        request = peer.request  # type: ignore[attr-defined]
        held = [request.uri, request.query, repr(request.query_arguments), repr(request.arguments)]
        assert not any(secret_token in text for text in held)
        assert "token=REDACTED" in request.uri and request.query_arguments["mode"] == [b"watch"]
        await c.send("console_input", {"content": "x"})  # still served: watch-only refusal
        assert (await c.recv("error"))["data"]["code"] == "AUTH_ERROR"
