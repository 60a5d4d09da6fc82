"""The baselines: a minimal Tornado WebSocket server doing vmws's jobs with no protocol logic.

No tokens, no hub, no simulator: what someone would write in an afternoon. The
benchmark runs it beside vmws and reports vmws's figures as ratios of these.

- ``/relay``: a console flood relay: 64 KiB reads from an in-memory source, each
  wrapped in a JSON ``console`` message (stdlib ``json`` or ``orjson``); every 32nd
  ``write_message`` is awaited (the others are not: each await costs a task).
- ``/echo``: each ``console_input`` comes back as a ``console`` message.
- ``/idle``: connections held with a protocol ping and a JSON heartbeat every interval.
- ``/broadcast``: one ~300-byte metrics message built once per interval, sent to all.

``python -m loadtests.baseline --port 0`` prints ``http://127.0.0.1:PORT`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

__all__ = ["make_app", "main", "CHUNK"]

CHUNK = 64 * 1024
_AWAIT_EVERY = 32


def _timestamp(t: float) -> str:
    moment = _dt.datetime.fromtimestamp(t, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _dumps_for(json_lib: str) -> Callable[[Any], str]:
    if json_lib == "orjson":
        return lambda value: orjson.dumps(value).decode()
    return json.dumps


class _State:
    """What the handlers share, handed in through ``initialize`` (no class-level state)."""

    def __init__(self, json_lib: str, heartbeat_interval: float, broadcast_interval: float) -> None:
        self.dumps = _dumps_for(json_lib)
        self.heartbeat_interval = heartbeat_interval
        self.broadcast_interval = broadcast_interval
        self.held: set[tornado.websocket.WebSocketHandler] = set()
        self.subscribers: set[tornado.websocket.WebSocketHandler] = set()
        # what a flood prints: `yes` output, CRLF endings as on a serial line
        self.source = (b"y\r\n" * (CHUNK // 3 + 1))[:CHUNK]


class _Socket(tornado.websocket.WebSocketHandler):
    def initialize(self, state: _State) -> None:
        self.state = state

    def check_origin(self, origin: str) -> bool:
        return True


class RelaySocket(_Socket):
    def open(self) -> None:
        self.set_nodelay(True)
        self._task = asyncio.ensure_future(self._relay())

    async def _relay(self) -> None:
        dumps = self.state.dumps
        source = self.state.source
        sent = 0
        try:
            while True:
                text = source.decode("utf-8")
                message = dumps(
                    {"type": "console", "timestamp": _timestamp(time.time()), "data": {"content": text, "eof": False}}
                )
                future = self.write_message(message)
                sent += 1
                if sent % _AWAIT_EVERY == 0:
                    await future
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_close(self) -> None:
        self._task.cancel()


class EchoSocket(_Socket):
    def open(self) -> None:
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        parsed = json.loads(message) if self.state.dumps is json.dumps else orjson.loads(message)
        content = parsed["data"]["content"]
        self.write_message(
            self.state.dumps(
                {"type": "console", "timestamp": _timestamp(time.time()), "data": {"content": content, "eof": False}}
            )
        )


class IdleSocket(_Socket):
    def open(self) -> None:
        self.state.held.add(self)

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        self.state.held.discard(self)


class BroadcastSocket(_Socket):
    def open(self) -> None:
        self.set_nodelay(True)
        self.state.held.add(self)
        self.state.subscribers.add(self)

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        self.state.held.discard(self)
        self.state.subscribers.discard(self)


def _send_all(peers: set[tornado.websocket.WebSocketHandler], message: str, ping: bool = False) -> None:
    for peer in list(peers):
        try:
            if ping:
                peer.ping(b"")
            peer.write_message(message)
        except tornado.websocket.WebSocketClosedError:
            peers.discard(peer)


async def _heartbeats(state: _State) -> None:
    seq = 0
    while True:
        await asyncio.sleep(state.heartbeat_interval)
        seq += 1
        message = state.dumps(
            {
                "type": "heartbeat",
                "timestamp": _timestamp(time.time()),
                "data": {"seq": seq, "interval": state.heartbeat_interval},
            }
        )
        _send_all(state.held, message, ping=True)


async def _broadcasts(state: _State) -> None:
    used = 1 << 30
    while True:
        await asyncio.sleep(state.broadcast_interval)
        used += 4096
        message = state.dumps(
            {
                "type": "metrics",
                "timestamp": _timestamp(time.time()),
                "data": {
                    "cpu": {"utilization": 23.5},
                    "memory": {"used": used, "total": 4294967296},
                    "network": {"rxBytes": 1024000 + used, "txBytes": 512000 + used},
                    "disk": {"readBytes": 2048000 + used, "writeBytes": 1024000 + used},
                },
            }
        )
        _send_all(state.subscribers, message)


def make_app(state: _State) -> tornado.web.Application:
    deps = {"state": state}
    return tornado.web.Application(
        [
            (r"/relay", RelaySocket, deps),
            (r"/echo", EchoSocket, deps),
            (r"/idle", IdleSocket, deps),
            (r"/broadcast", BroadcastSocket, deps),
        ],
        websocket_ping_interval=None,
    )


async def _serve(args: argparse.Namespace) -> None:
    state = _State(args.json, args.heartbeat_interval, args.broadcast_interval)
    server = tornado.httpserver.HTTPServer(make_app(state))
    sockets = tornado.netutil.bind_sockets(args.port, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"baseline ({args.json}) listening on http://127.0.0.1:{port}", flush=True)
    tasks = [asyncio.ensure_future(_heartbeats(state)), asyncio.ensure_future(_broadcasts(state))]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    for task in tasks:
        task.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json", choices=["stdlib", "orjson"], default="stdlib")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0)
    parser.add_argument("--broadcast-interval", type=float, default=1.0)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
