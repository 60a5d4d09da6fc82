"""Who gets in: the authorization matrix, Origin, tickets, expiry, connection limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.client import Client, client, running_server, token, ws_url

pytestmark = pytest.mark.asyncio

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
AUD, ISS = "vmws-tests", "https://idp.test"


def rs(perms: list[str], *, key: Any = RSA_KEY, vms: list[str] | None = None, **over: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "mallory",
        "iat": now,
        "exp": now + 3600,
        "aud": AUD,
        "iss": ISS,
        "permissions": perms,
    }
    if vms is not None:
        claims["vms"] = vms
    claims.update(over)
    return jwt.encode(claims, key, algorithm="RS256")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(alg: str, key: bytes) -> str:
    now = int(time.time())
    body = {"sub": "mallory", "exp": now + 3600, "aud": AUD, "iss": ISS, "permissions": ["read", "control", "console"]}
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(body).encode())
    sig = "" if alg == "none" else b64(hmac.new(key, head.encode(), hashlib.sha256).digest())
    return head + "." + sig


ALL = ["read", "control", "console"]
TOKENS: dict[str, str | None] = {
    "no token": None,
    "expired": rs(ALL, exp=int(time.time()) - 300),
    "not yet valid": rs(ALL, nbf=int(time.time()) + 86400),  # a day ahead: made at collection, the run may be long
    "wrong signature": rs(ALL, key=OTHER_KEY),
    "alg none": forged("none", b""),
    "HS256 signed with the public key": forged("HS256", PUBLIC_PEM),
    "wrong aud": rs(ALL, aud="someone-else"),
    "wrong iss": rs(ALL, iss="https://evil.test"),
    "token for VM a on VM b": rs(ALL, vms=["web-*"]),
    "read alone": rs(["read"]),
    "control alone": rs(["control"]),
    "console alone": rs(["console"]),
    "all": rs(ALL),
}
BAD = [
    "no token",
    "expired",
    "not yet valid",
    "wrong signature",
    "alg none",
    "HS256 signed with the public key",
    "wrong aud",
    "wrong iss",
]

OK = "ok"
# Expected outcome per endpoint: "ok", or (error code, close code) / HTTP status.
MATRIX: dict[str, dict[str, Any]] = {
    **{
        name: {
            "monitor": ("AUTH_ERROR", 4001),
            "console": ("AUTH_ERROR", 4001),
            "command": ("AUTH_ERROR", 4001),
            "api": 401,
        }
        for name in BAD
    },
    "token for VM a on VM b": {
        "monitor": ("AUTH_ERROR", 4003),
        "console": ("AUTH_ERROR", 4003),
        "command": ("AUTH_ERROR", 4003),
        "api": "filtered",
    },
    "read alone": {"monitor": OK, "console": ("AUTH_ERROR", 4003), "command": "refused-in-band", "api": 200},
    "control alone": {
        "monitor": ("AUTH_ERROR", 4003),
        "console": ("AUTH_ERROR", 4003),
        "command": ("AUTH_ERROR", 4003),
        "api": 403,
    },
    "console alone": {"monitor": ("AUTH_ERROR", 4003), "console": OK, "command": ("AUTH_ERROR", 4003), "api": 403},
    "all": {"monitor": OK, "console": OK, "command": OK, "api": 200},
}
ACTIONS = ["start", "stop", "restart", "suspend", "resume", "pause"]


@pytest.fixture
def rs256(tmp_path: Path) -> dict[str, Any]:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(PUBLIC_PEM)
    return {
        "jwt_algorithm": "RS256",
        "jwt_public_key": str(key_file),
        "jwt_secret": None,
        "jwt_audience": AUD,
        "jwt_issuer": ISS,
    }


async def _first(c: Client) -> dict[str, Any]:
    return await c.recv()


@pytest.mark.parametrize("case", list(MATRIX))
async def test_authorization_matrix(case: str, rs256: dict[str, Any]) -> None:
    tok = TOKENS[case] or ""
    expected = MATRIX[case]
    async with running_server(**rs256) as server:
        for endpoint, vm in [("monitor", "my-vm"), ("console", "my-vm")]:
            async with client(server, vm, console=endpoint == "console", tok=tok) as c:
                first = await _first(c)
                if expected[endpoint] == OK:
                    assert first["type"] == "connection", (case, endpoint, first)
                else:
                    code, close = expected[endpoint]
                    assert first["type"] == "error" and first["data"]["code"] == code, (case, endpoint, first)
                    assert (await c.closed())[0] == close, (case, endpoint)
        for n, action in enumerate(ACTIONS):
            async with client(server, "my-vm", tok=tok) as c:
                first = await _first(c)
                outcome = expected["command"]
                if isinstance(outcome, tuple):
                    assert first["data"]["code"] == outcome[0] and (await c.closed())[0] == outcome[1]
                    continue
                response_or_error = None
                await c.send("command", {"action": action, "requestId": f"m{n}"})
                while response_or_error is None:
                    message = await c.recv()
                    if message["type"] in ("response", "error"):
                        response_or_error = message
                if outcome == OK:
                    assert response_or_error["type"] == "response", (case, action)
                else:  # read alone: refused in band, the connection stays
                    assert response_or_error["data"]["code"] == "AUTH_ERROR"
                    await c.send("heartbeat", {"alive": True})
                    assert (await c.recv("heartbeat"))["data"] == {"alive": True}
        url = f"http://127.0.0.1:{server.port}/api/vms"
        try:
            response = await AsyncHTTPClient().fetch(url, headers={"Authorization": f"Bearer {tok}"} if tok else {})
            status, body = response.code, json.loads(response.body)
        except HTTPClientError as exc:
            status, body = exc.code, None
        if expected["api"] == "filtered":
            assert status == 200 and {v["name"] for v in body["vms"]} == {f"web-{i}" for i in range(1, 6)}
        else:
            assert status == expected["api"], case


async def test_foreign_origin_is_refused_even_with_a_valid_token() -> None:
    # CVE-2015-0259: a page on another site opens the console with the victim's credentials.
    async with running_server(allowed_origins=("https://dashboard.example",)) as server:
        url = ws_url(server, "my-vm", console=True)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        for origin in ["https://dashboard.example", f"http://127.0.0.1:{server.port}"]:
            async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                assert (await Client(ws).recv())["type"] == "connection"
        with pytest.raises(InvalidStatus):  # exact match only: scheme included
            async with connect(url, origin="http://dashboard.example"):  # type: ignore[arg-type]
                pass


async def _ticket(server: Any, tok: str) -> str:
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{server.port}/api/tickets",
        method="POST",
        body=b"",
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert response.code == 201
    data = json.loads(response.body)
    assert data["expiresIn"] > 0
    return str(data["ticket"])


async def test_tickets_are_single_use_and_short_lived() -> None:
    async with running_server(ticket_ttl=0.5) as server:
        ticket = await _ticket(server, token(["read"]))
        async with client(server, "my-vm", tok=ticket) as c:
            first = (await c.recv())["data"]
            assert first["user"] == "alice" and first["permissions"] == ["read"]
        async with client(server, "my-vm", tok=ticket) as c:  # second use
            assert (await c.recv())["data"]["code"] == "AUTH_ERROR"
            assert (await c.closed())[0] == 4001
        stale = await _ticket(server, token())
        await asyncio.sleep(0.7)
        async with client(server, "my-vm", tok=stale) as c:
            assert (await c.closed())[0] == 4001
        with pytest.raises(HTTPClientError) as refused:  # a ticket cannot buy another ticket
            await _ticket(server, await _ticket(server, token()))
        assert refused.value.code == 401


async def test_an_expiring_token_ends_the_session() -> None:
    # exp 8 s ago: within the 10 s leeway for 1-2 s more, then the session ends.
    async with running_server() as server, client(server, "my-vm", tok=token(ttl=-8)) as c:
        assert (await c.recv())["type"] == "connection"
        error = await c.recv("error", timeout=5)
        assert error["data"] == {"code": "AUTH_ERROR", "message": "token has expired"}
        assert (await c.closed())[0] == 4001


async def test_connection_limits_per_user_and_per_console() -> None:
    async with running_server(max_connections_per_user=2, max_console_viewers=1) as server:
        async with client(server, "my-vm") as a, client(server, "web-1", console=True) as b:
            await a.recv("connection")
            await b.recv("connection")
            async with client(server, "my-vm") as c:
                error = (await c.recv())["data"]
                assert error["code"] == "AUTH_ERROR" and "too many connections" in error["message"]
                assert (await c.closed())[0] == 4029
            async with client(server, "web-1", console=True, tok=token(sub="bob")) as d:
                assert "too many viewers" in (await d.recv())["data"]["message"]
                assert (await d.closed())[0] == 4029
        # Closing frees the slots.
        async with client(server, "my-vm") as e:
            assert (await e.recv())["type"] == "connection"


async def test_oversized_message_closes_1009_and_flooding_is_rate_limited() -> None:
    async with running_server(max_message_bytes=1024, max_message_rate=5) as server:
        async with client(server, "my-vm") as c:
            await c.recv("status")
            for n in range(40):
                await c.send("heartbeat", {"n": n})
            echoes, errors = 0, []
            try:
                async with asyncio.timeout(1.5):
                    while True:
                        message = await c.recv()
                        if message["type"] == "heartbeat" and "n" in (message["data"] or {}):
                            echoes += 1
                        elif message["type"] == "error":
                            errors.append(message["data"])
            except TimeoutError:
                pass
            assert 5 <= echoes <= 15  # the burst passes, the rest is dropped
            assert len(errors) == 1 and errors[0]["code"] == "INVALID_COMMAND"
            assert "rate limit" in errors[0]["message"]
        async with client(server, "my-vm") as c:
            await c.recv("status")
            await c.send("heartbeat", {"pad": "x" * 2000})
            assert (await c.closed())[0] == 1009
