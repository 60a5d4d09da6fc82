"""Locust users for vmws: one WebSocket connection each, every operation a request event.

Imported by the locustfiles in ``loadtests/scenarios/``. The client is
``websocket-client``, which Locust's gevent monkey-patching makes cooperative. Each
operation becomes a Locust request event (``request_type`` ``WS``):

| name | response_time | response_length |
| --- | --- | --- |
| ``connect monitor`` / ``connect console`` | upgrade → ``connection`` message | — |
| ``command ACTION`` | command sent → its ``response`` | — |
| ``heartbeat rtt`` | client heartbeat → its echo | — |
| ``console echo`` | keystroke sent → the character echoed | — |
| ``console line`` | Enter → the next prompt (the command's output in between) | bytes |
| ``console bytes`` | delivery lag of a console message (now − its timestamp) | bytes |
| ``metrics lag`` | now − the metrics message's timestamp | bytes |
| ``dropped`` | failure: the server closed a connection we still wanted | — |
| ``missed heartbeat`` | failure: no server heartbeat for 2.5 intervals | — |

Tokens are minted here from the server's secret (``--vmws-secret``). VM names come
from ``loadtests.fleet``: user number ``k`` of worker ``w`` uses VM
``(w + k * workers) % vms``, so with one VM per user no two users share one.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from collections.abc import Callable
from typing import Any, cast

import gevent
import gevent.event
import orjson
import websocket
from locust import User, events
from locust.env import Environment
from locust.exception import StopUser

from loadtests.fleet import vm_name
from vmws.auth import mint_token

__all__ = ["VMWSUser", "Connection", "ConsoleSession", "REQUEST_TYPE"]

REQUEST_TYPE = "WS"
_PROMPT = "$ "
_LOGIN_PROMPT = "login: "


def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("vmws", "options of the vmws scenarios")
    group.add_argument(
        "--vmws-secret", env_var="VMWS_JWT_SECRET", default="", help="HS256 secret of the server, to mint tokens"
    )
    group.add_argument("--vmws-vms", type=int, default=1, help="VMs in the fleet (loadtests.fleet names)")
    group.add_argument("--vmws-prefix", default="load", help="VM name prefix of the fleet")
    group.add_argument("--vmws-workers", type=int, default=1, help="Locust worker processes (VM assignment)")
    group.add_argument("--vmws-flood", type=int, default=100000, help="console_throughput: seq N per flood")
    group.add_argument(
        "--vmws-command-share", type=float, default=0.05, help="monitoring: share of users that send commands"
    )


# Locust's event hooks are untyped; registered through Any
cast(Any, events).init_command_line_parser.add_listener(_add_arguments)


def _fire(
    environment: Environment,
    name: str,
    started: float,
    *,
    length: int = 0,
    exception: BaseException | None = None,
    elapsed_ms: float | None = None,
) -> None:
    cast(Any, environment.events).request.fire(
        request_type=REQUEST_TYPE,
        name=name,
        response_time=elapsed_ms if elapsed_ms is not None else (time.perf_counter() - started) * 1000.0,
        response_length=length,
        exception=exception,
        context={},
    )


def _message_lag_ms(message: dict[str, Any]) -> float:
    sent = _dt.datetime.fromisoformat(message["timestamp"]).timestamp()
    # timestamps carry milliseconds; a lag below their resolution reads as 0
    return max(0.0, (time.time() - sent) * 1000.0)


class Connection:
    """One vmws WebSocket, its receive greenlet and its pending round trips."""

    def __init__(self, environment: Environment, url: str, endpoint: str) -> None:
        self.environment = environment
        self.url = url
        self.endpoint = endpoint
        self.on_console: Callable[[str, dict[str, Any]], None] | None = None
        self.report_metrics = False
        self.info: dict[str, Any] = {}
        self.server_heartbeats = 0
        self._ws: websocket.WebSocket | None = None
        self._waiting: dict[str, gevent.event.AsyncResult] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._greenlets: list[gevent.Greenlet] = []
        self._last_heartbeat = time.monotonic()

    def open(self) -> None:
        """Connect and read the ``connection`` message; a refusal is a failure and StopUser."""
        started = time.perf_counter()
        name = f"connect {self.endpoint}"
        try:
            self._ws = websocket.create_connection(
                self.url, timeout=30, enable_multithread=True, skip_utf8_validation=True
            )
            first = orjson.loads(self._ws.recv())
            if first.get("type") != "connection":
                raise ConnectionError(f"refused: {first.get('data')}")
        except Exception as exc:
            _fire(self.environment, name, started, exception=exc)
            raise StopUser() from None
        _fire(self.environment, name, started)
        self.info = first["data"]
        self._ws.settimeout(None)
        self._last_heartbeat = time.monotonic()
        self._greenlets = [gevent.spawn(self._receive_loop), gevent.spawn(self._watch_heartbeats)]

    def send(self, kind: str, data: Any) -> None:
        assert self._ws is not None
        self._ws.send(orjson.dumps({"type": kind, "timestamp": _now_iso(), "data": data}).decode())

    def round_trip(self, kind: str, data: dict[str, Any], key: str, name: str, timeout: float = 30.0) -> Any:
        """Send a message carrying ``data[key]`` and wait for the reply echoing it."""
        waiter = gevent.event.AsyncResult()
        self._waiting[data[key]] = waiter
        started = time.perf_counter()
        try:
            self.send(kind, data)
            reply = waiter.get(timeout=timeout)
        except Exception as exc:
            _fire(self.environment, name, started, exception=exc)
            return None
        finally:
            self._waiting.pop(data[key], None)
        failed = isinstance(reply, dict) and reply.get("success") is False
        _fire(self.environment, name, started, exception=RuntimeError(reply.get("message")) if failed else None)
        return reply

    def heartbeat(self) -> None:
        probe = f"hb-{next(self._ids)}"
        self.round_trip("heartbeat", {"probe": probe}, "probe", "heartbeat rtt")

    def command(self, action: str) -> Any:
        request_id = f"lt-{id(self):x}-{next(self._ids)}"
        return self.round_trip("command", {"action": action, "requestId": request_id}, "requestId", f"command {action}")

    def close(self) -> None:
        self._closing = True
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self._ws is not None:
            try:
                self._ws.close(timeout=1)
            except Exception:  # already gone: nothing to tell the server
                pass

    # Loops

    def _receive_loop(self) -> None:
        assert self._ws is not None
        try:
            while True:
                raw = self._ws.recv()
                if not raw:
                    break
                self._dispatch(orjson.loads(raw), len(raw))
        except Exception as exc:
            if not self._closing:
                _fire(self.environment, "dropped", time.perf_counter(), exception=exc)
            return
        if not self._closing:
            code = getattr(self._ws, "status", None)
            _fire(
                self.environment,
                "dropped",
                time.perf_counter(),
                exception=ConnectionError(f"closed by the server (status {code})"),
            )

    def _dispatch(self, message: dict[str, Any], size: int) -> None:
        kind = message.get("type")
        data: Any = message.get("data")
        if kind == "console":
            if self.on_console is not None:
                self.on_console(data["content"], message)
        elif kind == "heartbeat":
            if isinstance(data, dict) and "probe" in data:
                self._resolve(data["probe"], data)
            else:
                self.server_heartbeats += 1
                self._last_heartbeat = time.monotonic()
        elif kind == "response":
            self._resolve(data.get("requestId"), data)
        elif kind == "metrics":
            if self.report_metrics:
                _fire(self.environment, "metrics lag", 0.0, length=size, elapsed_ms=_message_lag_ms(message))
        elif kind == "error":
            waiter = self._waiting.get(data.get("requestId", ""))
            error = RuntimeError(f"{data.get('code')}: {data.get('message')}")
            if waiter is not None:
                waiter.set_exception(error)
            else:
                _fire(self.environment, f"error {data.get('code')}", time.perf_counter(), exception=error)

    def _resolve(self, key: Any, data: Any) -> None:
        waiter = self._waiting.get(key)
        if waiter is not None:
            waiter.set(data)

    def _watch_heartbeats(self) -> None:
        interval = float(self.info.get("heartbeatInterval", 30.0))
        while True:
            gevent.sleep(interval)
            silent = time.monotonic() - self._last_heartbeat
            if silent > 2.5 * interval:
                _fire(
                    self.environment,
                    "missed heartbeat",
                    time.perf_counter(),
                    elapsed_ms=silent * 1000,
                    exception=RuntimeError(f"no server heartbeat for {silent:.1f}s (interval {interval:g}s)"),
                )
                self._last_heartbeat = time.monotonic()


class ConsoleSession:
    """A console connection's output as a stream to wait on (login, echo, prompts)."""

    def __init__(self, connection: Connection, report_bytes: bool = False) -> None:
        self.connection = connection
        self.report_bytes = report_bytes
        self.text = ""
        self.received = 0
        self._changed = gevent.event.Event()
        connection.on_console = self._on_console

    def _on_console(self, content: str, message: dict[str, Any]) -> None:
        # keep only a tail: floods must not grow memory, waits look at recent output
        self.text = (self.text + content)[-4096:]
        self.received += len(content)
        if self.report_bytes:
            _fire(
                self.connection.environment,
                "console bytes",
                0.0,
                length=len(content),
                elapsed_ms=_message_lag_ms(message),
            )
        self._changed.set()

    def type(self, content: str) -> None:
        self.connection.send("console_input", {"content": content})

    def expect(self, needle: str, timeout: float = 30.0) -> None:
        """Wait until ``needle`` ends up in the output received since ``mark()``."""
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {needle!r} within {timeout:g}s; saw {self.text[-200:]!r}")
            self._changed.clear()
            if needle in self.text:
                return
            self._changed.wait(left)

    def mark(self) -> None:
        self.text = ""

    def login(self, username: str = "admin", password: str = "admin") -> None:
        """From wherever the shared console is (login prompt or shell), reach a shell prompt."""
        started = time.perf_counter()
        try:
            gevent.sleep(0.2)  # the scrollback replay arrives first
            self.mark()
            self.type("\x03\r")
            deadline = time.monotonic() + 30
            while _PROMPT not in self.text and _LOGIN_PROMPT not in self.text:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no prompt; saw {self.text[-200:]!r}")
                self._changed.clear()
                self._changed.wait(1.0)
            if _PROMPT not in self.text:
                self.mark()
                self.type(username + "\r")
                self.expect("Password: ")
                self.mark()
                self.type(password + "\r")
                self.expect(_PROMPT)
        except Exception as exc:
            _fire(self.connection.environment, "console login", started, exception=exc)
            raise StopUser() from None
        _fire(self.connection.environment, "console login", started)


_user_numbers = itertools.count()


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class VMWSUser(User):
    """A user with one vmws connection (opened by subclasses in ``on_start``)."""

    abstract = True
    permissions: tuple[str, ...] = ("read", "control", "console")

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        self.options: Any = options
        runner = environment.runner
        worker = getattr(runner, "worker_index", 0) if runner is not None else 0
        workers = max(1, int(getattr(options, "vmws_workers", 1)))
        self.number = worker + next(_user_numbers) * workers
        self.connection: Connection | None = None

    def vm_for(self, number: int) -> str:
        count = max(1, int(self.options.vmws_vms))
        return vm_name(number % count, self.options.vmws_prefix)

    def url(self, vm: str, endpoint: str) -> str:
        secret = self.options.vmws_secret
        if not secret:
            raise StopUser("no --vmws-secret (or VMWS_JWT_SECRET): cannot mint tokens")
        token = mint_token(
            secret, sub=f"locust-{self.number}", permissions=list(self.permissions), now=time.time(), ttl=24 * 3600
        )
        base = (self.host or "ws://127.0.0.1:8080").rstrip("/")
        suffix = "/console" if endpoint == "console" else ""
        return f"{base}/ws/vms/{vm}{suffix}?token={token}"

    def connect(self, endpoint: str, vm: str | None = None) -> Connection:
        connection = Connection(self.environment, self.url(vm or self.vm_for(self.number), endpoint), endpoint)
        self.connection = connection
        connection.open()
        return connection

    def on_stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
