"""``POST /api/revocations`` over a real server: matching sessions close with 4001 at once,
new ones are refused (tokens and tickets alike), others are untouched, and it is audited."""

from __future__ import annotations

import jwt
import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import Client, client, running_server, token, ws_url
from tests.e2e.test_audit import audit, http

pytestmark = pytest.mark.asyncio

ADMIN = token(["admin"], sub="root")


def jti(tok: str) -> str:
    value: str = jwt.decode(tok, options={"verify_signature": False})["jti"]
    return value


async def test_revoking_a_subject_closes_its_sessions_with_4001_and_refuses_it_until_expiry() -> None:
    mallory = token(sub="mallory")
    async with running_server(heartbeat_interval=0.2) as server:
        status, body = await http(server, "POST", "/api/tickets", tok=mallory, body=b"")
        assert status == 201
        ticket_bought_before = body["ticket"]
        async with (
            client(server, "my-vm", tok=mallory) as watch,
            client(server, "web-1", console=True, tok=mallory) as console,
            client(server, "my-vm", tok=token(sub="bob")) as bystander,
        ):
            for c in (watch, console, bystander):
                await c.recv("connection")
            status, body = await http(
                server, "POST", "/api/revocations", tok=ADMIN, body={"sub": "mallory", "expiresIn": 600}
            )
            assert status == 201 and body["sessionsClosed"] == 2
            assert body["revocation"]["sub"] == "mallory" and body["revocation"]["expiresAt"].endswith("Z")
            for c in (watch, console):
                error = await c.recv("error")
                assert error["data"]["code"] == "AUTH_ERROR" and "revoked" in error["data"]["message"]
                assert await c.closed() == (4001, "token revoked")
            await bystander.recv("heartbeat")  # still served
            assert bystander.ws.close_code is None
        # New sessions, REST and tickets: refused while the entry holds.
        async with connect(ws_url(server, "my-vm", tok=mallory)) as ws:
            c = Client(ws)
            assert "revoked" in (await c.recv("error"))["data"]["message"]
            assert (await c.closed())[0] == 4001
        async with connect(ws_url(server, "my-vm", tok=ticket_bought_before)) as ws:
            assert (await Client(ws).closed())[0] == 4001
        assert (await http(server, "GET", "/api/vms", tok=mallory))[0] == 401
        assert (await http(server, "POST", "/api/tickets", tok=mallory, body=b""))[0] == 401
        assert (await http(server, "GET", "/api/vms", tok=token(sub="bob")))[0] == 200
        status, listing = await http(server, "GET", "/api/revocations", tok=ADMIN)
        assert status == 200 and [r["sub"] for r in listing["revocations"]] == ["mallory"]
        events = await audit(server)
    (revocation,) = [e for e in events if e["kind"] == "revocation"]
    assert revocation["user"] == "root" and revocation["sub"] == "mallory" and revocation["sessionsClosed"] == 2
    reasons = [e["reason"] for e in events if e["kind"] == "auth_refused"]
    assert reasons.count("revoked") >= 3


async def test_revoking_one_token_by_jti_leaves_the_subjects_other_tokens_working() -> None:
    stolen, fresh = token(sub="heidi"), token(sub="heidi")
    async with running_server() as server:
        async with client(server, "my-vm", tok=stolen) as old, client(server, "my-vm", tok=fresh) as new:
            await old.recv("connection")
            await new.recv("connection")
            status, body = await http(
                server,
                "POST",
                "/api/revocations",
                tok=ADMIN,
                body={"jti": jti(stolen), "expiresAt": "2999-01-01T00:00:00Z"},
            )
            assert status == 400 and "days away" in body["error"]["message"]
            status, body = await http(
                server, "POST", "/api/revocations", tok=ADMIN, body={"jti": jti(stolen), "expiresIn": 3600}
            )
            assert (
                status == 201
                and body["sessionsClosed"] == 1
                and body["revocation"] == {"jti": jti(stolen), "expiresAt": body["revocation"]["expiresAt"]}
            )
            assert (await old.closed())[0] == 4001
            assert (await new.command("start", "still-mine"))["success"] is True
        assert (await http(server, "GET", "/api/vms", tok=stolen))[0] == 401
        assert (await http(server, "GET", "/api/vms", tok=fresh))[0] == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"sub": "x", "jti": "y", "expiresIn": 60}, "exactly one of 'sub' and 'jti'"),
        ({"expiresIn": 60}, "exactly one of 'sub' and 'jti'"),
        ({"sub": "x"}, "'expiresAt'"),
        ({"sub": "x", "expiresIn": -5}, "in the past"),
        ({"sub": "x", "expiresIn": "soon"}, "number of seconds"),
        ({"sub": "x", "expiresAt": "tomorrow"}, "RFC 3339"),
        ({"sub": 7, "expiresIn": 60}, "must be a string"),
        ({"sub": "x", "expiresIn": 60, "role": "all"}, "unknown field"),
        ([1, 2], "JSON object"),
        (b"\xff{", "JSON object"),
        (b"{" + b" " * 5000 + b"}", "over 4096 bytes"),
    ],
)
async def test_bad_revocations_are_refused_with_a_message_naming_the_problem(body: object, says: str) -> None:
    async with running_server() as server:
        status, reply = await http(server, "POST", "/api/revocations", tok=ADMIN, body=body)
        assert status == 400 and reply["error"]["code"] == "INVALID_COMMAND" and says in reply["error"]["message"]


async def test_revocations_need_the_admin_permission() -> None:
    async with running_server() as server:
        everything_else = token(["read", "control", "console", "audit", "metrics", "watch"])
        for method in ("GET", "POST"):
            body = {"sub": "x", "expiresIn": 60} if method == "POST" else None
            status, reply = await http(server, method, "/api/revocations", tok=everything_else, body=body)
            assert status == 403 and "'admin'" in reply["error"]["message"]
            assert (await http(server, method, "/api/revocations", body=body))[0] == 401
        assert (await http(server, "GET", "/api/revocations", tok=ADMIN))[1] == {"revocations": []}
