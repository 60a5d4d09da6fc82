"""/healthz, /api/vms and the access log."""

from __future__ import annotations

import logging

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.e2e.client import client, running_server, token

pytestmark = pytest.mark.asyncio


async def fetch(url: str, **kwargs: object) -> tuple[int, dict[str, object], object]:
    try:
        response = await AsyncHTTPClient().fetch(url, **kwargs)  # type: ignore[arg-type]
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    return response.code, dict(response.headers), orjson.loads(response.body)


async def test_healthz() -> None:
    async with running_server() as server:
        code, _, body = await fetch(f"http://127.0.0.1:{server.port}/healthz")
        assert code == 200 and body == {"status": "ok"}


async def test_vm_list_with_query_token_or_bearer_and_vms_patterns() -> None:
    async with running_server() as server:
        base = f"http://127.0.0.1:{server.port}/api/vms"
        code, _, body = await fetch(f"{base}?token={token(['read'])}")
        assert code == 200
        listing = {vm["name"]: vm["status"] for vm in body["vms"]}  # type: ignore[index]
        assert listing["my-vm"] == "running" and listing["db-1"] == "stopped"
        assert {"paused", "suspended", "error"} <= set(listing.values())
        assert {f"web-{n}" for n in range(1, 6)} <= set(listing)
        code, _, body = await fetch(base, headers={"Authorization": f"Bearer {token(['read'], vms=['web-*'])}"})
        assert code == 200 and sorted(v["name"] for v in body["vms"]) == [f"web-{n}" for n in range(1, 6)]  # type: ignore[index]


@pytest.mark.parametrize(
    ("tok", "status"),
    [(None, 401), ("bad", 401), ("CONSOLE", 403)],
)
async def test_vm_list_refusals(tok: str | None, status: int) -> None:
    async with running_server() as server:
        query = "" if tok is None else f"?token={token(['console']) if tok == 'CONSOLE' else tok}"
        code, headers, body = await fetch(f"http://127.0.0.1:{server.port}/api/vms{query}")
        assert code == status and body["error"]["code"] == "AUTH_ERROR"  # type: ignore[index]


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tok = token()
    async with running_server() as server:
        await fetch(f"http://127.0.0.1:{server.port}/api/vms?token={tok}")
        await fetch(f"http://127.0.0.1:{server.port}/api/vms", headers={"Authorization": f"Bearer {tok}"})
        async with client(server, "my-vm", tok=tok) as c:
            await c.command("start", "x")
        async with client(server, "ghost", tok=tok) as c:
            await c.closed()
    # Everything the server side logged (the websockets client's own debug log is not ours).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("vmws", "tornado")))
    assert "token=REDACTED" in text
    assert tok not in text and tok.split(".")[2] not in text
