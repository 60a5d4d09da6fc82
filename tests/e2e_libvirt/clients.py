"""WebSocket clients of ``vmws serve --backend libvirt`` for the end-to-end tests.

``Monitor`` is a ``/ws/vms/NAME`` connection that remembers every status; ``Viewer``
is a ``/ws/vms/NAME/console`` connection read by one background task (so no receive
is ever cancelled by a timeout), searched like pexpect and able to log in to the tiny
guest's getty.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e_libvirt.server import token

__all__ = ["CURSOR_QUERY", "Monitor", "Viewer", "open_monitor", "open_viewer"]

# busybox's line editor asks the terminal for the cursor position after each prompt.
CURSOR_QUERY = "\x1b[6n"
PROMPT = r"[$#] $"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Monitor:
    """A monitoring connection that remembers every status and the latest metrics."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.status_messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] | None = None

    async def next(self, kind: str, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = orjson.loads(await self.ws.recv())
                if message["type"] == "status":
                    self.status_messages.append(message)
                elif message["type"] == "metrics":
                    self.metrics = message["data"]
                elif message["type"] == "error":
                    self.errors.append(message)
                if message["type"] == kind:
                    return message

    async def status_since(self, index: int, wanted: str, timeout: float) -> dict[str, Any]:
        """The first ``wanted`` status after the ``index``-th one (already seen or still to come)."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.status_messages[index:]:
                    if message["data"]["status"] == wanted:
                        return message
                await self.next("status", timeout)

    async def command(self, action: str, timeout: float) -> dict[str, Any]:
        request_id = f"e2e-{action}-{time.monotonic_ns()}"
        await self.ws.send(
            orjson.dumps(
                {"type": "command", "timestamp": _now(), "data": {"action": action, "requestId": request_id}}
            ).decode()
        )
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next("response", timeout)
                if message["data"]["requestId"] == request_id:
                    return message["data"]

    async def echo(self, timeout: float = 10.0) -> None:
        """A heartbeat round trip: the server answers this very connection."""
        marker = time.monotonic_ns()
        await self.ws.send(orjson.dumps({"type": "heartbeat", "timestamp": _now(), "data": {"echo": marker}}).decode())
        async with asyncio.timeout(timeout):
            while (await self.next("heartbeat", timeout))["data"] != {"echo": marker}:
                pass

    async def counters_until(self, done: Any, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                await self.next("metrics", timeout)
                assert self.metrics is not None
                if done(self.metrics):
                    return self.metrics


class Viewer:
    """A console connection; everything it receives is kept in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._raw = ""
        self.pos = 0  # where the next expect starts searching
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for raw in self.ws:
                message: dict[str, Any] = orjson.loads(raw)
                self.messages.append(message)
                if message["type"] == "console":
                    self._raw += message["data"]["content"]
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    @property
    def text(self) -> str:
        """Everything shown so far, as a terminal shows it (the query may span two messages)."""
        return self._raw.replace(CURSOR_QUERY, "")

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code if self.closed.is_set() else None

    async def send(self, content: str) -> None:
        await self.ws.send(
            orjson.dumps({"type": "console_input", "timestamp": _now(), "data": {"content": content}}).decode()
        )

    async def search(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The next match of ``pattern`` (from ``pos`` on), or None after ``timeout``."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    text = self.text
                    match = regex.search(text, self.pos)
                    if match:
                        self.pos = match.end()
                        return match
                    if self.closed.is_set():
                        raise AssertionError(
                            f"console closed ({self.ws.close_code}) before {pattern!r}; it ends with {text[-300:]!r}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return None

    async def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        match = await self.search(pattern, timeout)
        if match is None:
            raise AssertionError(f"no {pattern!r} within {timeout:g} s; the console ends with {self.text[-300:]!r}")
        return match

    async def login(self, user: str, password: str, timeout: float) -> None:
        """From wherever the console is (booting, at login:, at a prompt) to a shell prompt."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.send("\r")  # getty may have printed its prompt before we came
            match = await self.search(r"login: ?$|" + PROMPT, min(10.0, max(deadline - loop.time(), 0.1)))
            if match is None:
                assert loop.time() < deadline, f"no login prompt within {timeout:g} s: {self.text[-300:]!r}"
                continue
            if not match.group(0).startswith("login"):
                return
            await self.send(user + "\r")
            await self.expect(r"[Pp]assword: ?$", 30)
            await self.send(password + "\r")
            await self.expect(PROMPT, 60)
            return

    async def run(self, command: str, marker: str, timeout: float = 60.0) -> str:
        """Type ``command`` at the prompt; what it printed (framed by ``marker``, quoted apart)."""
        await self.send(f"echo '{marker}'B; {command}; echo '{marker}'E\r")
        start = (await self.expect(re.escape(marker) + r"B\r*\n", timeout)).end()
        end = (await self.expect(re.escape(marker) + r"E\r*\n", timeout)).start()
        return self.text[start:end].replace("\r\n", "\n")

    async def heartbeat(self) -> None:
        """A client heartbeat: the server keeps a viewer that sends frames (reading or not)."""
        await self.ws.send(orjson.dumps({"type": "heartbeat", "timestamp": _now(), "data": {}}).decode())

    async def stop_reading(self) -> None:
        """Read nothing more: the client library's queue fills, then TCP's, as with a stalled viewer."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def aclose(self) -> None:
        await self.ws.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def open_monitor(url: str, name: str, timeout: float = 30.0) -> tuple[Monitor, dict[str, Any]]:
    """A watcher on ``name`` (read and control) and the first status it was sent."""
    ws = await connect(f"{url}/ws/vms/{name}?token={token('read', 'control')}", max_size=2**22)
    monitor = Monitor(ws)
    hello = await monitor.next("connection", timeout)
    assert hello["data"]["vm"] == name, hello
    return monitor, await monitor.next("status", timeout)


async def open_viewer(url: str, name: str, *, keepalive: bool = True) -> Viewer:
    """A viewer; ``keepalive=False`` for one that stops reading (its pongs would never come)."""
    ws = await connect(
        f"{url}/ws/vms/{name}/console?token={token('console')}", max_size=2**22, ping_interval=20 if keepalive else None
    )
    return Viewer(ws)
