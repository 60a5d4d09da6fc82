"""A real vmws server and real screen clients for the screen's end-to-end tests.

``screen`` connects with the ``websockets`` library offering the ``binary`` subprotocol
as noVNC does; ``RFBClient`` (tests/rfb_client.py) speaks RFB over it. ``ScriptedScreens``
is the simulator with each screen served by a scripted RFB server instead of the
simulator's own, for what the simulator's server never does (misbehave, hang up).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.client import SECRET, token
from tests.rfb_client import RFBClient, WebSocketTransport
from tests.screen.scripted_server import Script, serve
from vmws.app import Server
from vmws.backend import Backend, check_screen_status
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config


class ScriptedScreens(SimulatorBackend):
    """The simulated fleet whose screens are scripted servers (``scripts`` records each)."""

    def __init__(self, make_script: Callable[[], Script] = Script, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.make_script = make_script
        self.scripts: list[Script] = []
        self._served: set[asyncio.Task[None]] = set()

    async def open_screen(self, name: str) -> socket.socket:
        check_screen_status(self.simulator.info(name))
        ours, theirs = socket.socketpair()
        script = self.make_script()
        self.scripts.append(script)
        task = asyncio.create_task(serve(theirs, script))
        self._served.add(task)
        task.add_done_callback(self._served.discard)
        return ours

    async def served(self) -> None:
        """Wait until every scripted server has seen its client go."""
        await asyncio.gather(*self._served)


@contextlib.asynccontextmanager
async def gateway(backend: Backend | None = None, **overrides: Any) -> AsyncIterator[Server]:
    settings: dict[str, Any] = {"port": 0, "jwt_secret": SECRET}
    settings.update(overrides)
    server = Server(Config(**settings), backend or SimulatorBackend(speed=20.0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def screen_url(server: Server, vm: str, *, tok: str | None = None, **query: str) -> str:
    params = {"token": token() if tok is None else tok, **query}
    return f"ws://127.0.0.1:{server.port}/ws/vms/{quote(vm, safe='')}/screen?{urlencode(params)}"


@contextlib.asynccontextmanager
async def screen(server: Server, vm: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(screen_url(server, vm, **kwargs), subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        yield ws


@contextlib.asynccontextmanager
async def viewer(server: Server, vm: str, **kwargs: Any) -> AsyncIterator[RFBClient]:
    """An RFB session through the gateway, past its handshake."""
    async with screen(server, vm, **kwargs) as ws:
        async with asyncio.timeout(10):
            client = await RFBClient.connect(WebSocketTransport(ws))
        yield client


async def frames_until_closed(ws: ClientConnection, timeout: float = 10.0) -> list[str | bytes]:
    """Every frame the server sends until it closes."""
    frames: list[str | bytes] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                frames.append(await ws.recv())
    return frames


def watch_token() -> str:
    return token(["read", "watch"], ttl=600)
