"""Helpers for end-to-end tests: a real vmws server on an unused port, a real client.

The client is the third-party ``websockets`` library, as a dashboard would use. Every
message it receives, and every message it sends, is checked against the published schema
(docs/schema/vmws-protocol.schema.json): a message the docs do not describe fails the
test that saw it. A test that sends a bad message on purpose says so (``malformed=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.schema.protocol_schema import SchemaViolation, check_received, check_sent
from vmws.app import Server
from vmws.auth import mint_token
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config

SECRET = "e2e-secret-that-is-at-least-32-bytes-long"
ALL = ["read", "control", "console"]


def token(perms: list[str] | None = None, *, sub: str = "alice", ttl: float = 600, vms: list[str] | None = None) -> str:
    return mint_token(SECRET, sub=sub, permissions=ALL if perms is None else perms, now=time.time(), ttl=ttl, vms=vms)


@contextlib.asynccontextmanager
async def running_server(speed: float = 20.0, **overrides: Any) -> AsyncIterator[Server]:
    settings: dict[str, Any] = {"port": 0, "jwt_secret": SECRET, "metrics_interval": 0.2}
    settings.update(overrides)
    server = Server(Config(**settings), SimulatorBackend(speed=speed, scenario=settings.get("scenario")))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Client:
    """One WebSocket connection with message helpers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        # The schema differs per endpoint; the path says which this is.
        path = ws.request.path.split("?")[0] if ws.request is not None else ""
        self.endpoint = "console" if path.endswith("/console") else "fleet" if path == "/ws/fleet" else "monitor"

    def _checked(self, frame: str | bytes) -> dict[str, Any]:
        """A received frame, parsed and checked against the schema."""
        assert isinstance(frame, str), f"the server sent a binary frame: {frame[:100]!r}"
        message: dict[str, Any] = orjson.loads(frame)
        check_received(message, self.endpoint)
        return message

    async def recv(self, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The next message, or the next of ``kind`` (others are skipped, after their check)."""
        async with asyncio.timeout(timeout):
            while True:
                message = self._checked(await self.ws.recv())
                if kind is None or message["type"] == kind:
                    return message

    async def send(self, kind: str, data: Any = None, *, malformed: bool = False) -> None:
        """Send one message; it must match the schema, or not at all when ``malformed``."""
        body: dict[str, Any] = {"type": kind, "timestamp": "2023-05-23T12:34:56Z"}
        if data is not None:
            body["data"] = data
        if malformed:
            with contextlib.suppress(SchemaViolation):
                check_sent(body, self.endpoint)
                raise AssertionError(f"sent as malformed, but the schema accepts it: {body!r}")
        else:
            check_sent(body, self.endpoint)
        await self.ws.send(orjson.dumps(body).decode())

    async def command(self, action: str, request_id: str, **extra: Any) -> dict[str, Any]:
        await self.send("command", {"action": action, "requestId": request_id, **extra})
        while True:
            message = await self.recv("response", timeout=30)
            if message["data"]["requestId"] == request_id:
                return message["data"]

    async def read_console_until(self, needle: str, timeout: float = 15.0) -> str:
        """Console text received until ``needle`` appears (returned in full)."""
        seen = ""
        async with asyncio.timeout(timeout):
            while needle not in seen:
                message = await self.recv("console")
                seen += message["data"]["content"]
                assert not message["data"]["eof"], f"eof before {needle!r}: {seen!r}"
        return seen

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Wait for the server to close; skip messages; return (code, reason)."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    self._checked(await self.ws.recv())
        return self.ws.close_code, self.ws.close_reason


def ws_url(server: Server, vm: str, *, console: bool = False, tok: str | None = None, **query: str) -> str:
    from urllib.parse import quote, urlencode

    params = {"token": token() if tok is None else tok, **query}
    suffix = "/console" if console else ""
    return f"ws://127.0.0.1:{server.port}/ws/vms/{quote(vm, safe='')}{suffix}?{urlencode(params)}"


@contextlib.asynccontextmanager
async def client(server: Server, vm: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with connect(ws_url(server, vm, **kwargs), max_size=None) as ws:
        yield Client(ws)
