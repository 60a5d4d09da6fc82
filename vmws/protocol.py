"""The wire protocol, sans I/O: parse what clients send, build what the server sends.

Nothing here touches a socket, a clock or a backend: handlers pass text in and get
typed messages (or ``InvalidCommand``) out, and pass values in to get JSON text
out. Every server message has the spec's envelope ``{type, timestamp, data}``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
from dataclasses import dataclass
from json.encoder import encode_basestring as _escape_json
from typing import Any

import orjson

try:  # the fast extra (vmws[fast]): a C escaper twice the stdlib's speed on dense text
    import ujson as _ujson
except ImportError:  # then the stdlib's escaper, as before
    _ujson = None  # type: ignore[assignment]

from vmws.backend import Action, MetricsSample, VMInfo
from vmws.codes import ErrorCode
from vmws.errors import InvalidCommand

__all__ = [
    "Endpoint",
    "Command",
    "ConsoleInput",
    "Heartbeat",
    "ClientMessage",
    "MAX_REQUEST_ID_LENGTH",
    "iso_timestamp",
    "parse_client_message",
    "encode",
    "connection_message",
    "status_message",
    "metrics_message",
    "response_message",
    "console_message",
    "error_message",
    "heartbeat_message",
    "viewers_message",
]

MAX_REQUEST_ID_LENGTH = 128


class Endpoint(str, enum.Enum):
    MONITOR = "monitor"
    CONSOLE = "console"
    FLEET = "fleet"
    SCREEN = "screen"  # binary RFB only: no JSON message is accepted (vmws/screen/)


@dataclass(frozen=True, slots=True)
class Command:
    action: Action
    request_id: str | None
    force: bool = False


@dataclass(frozen=True, slots=True)
class ConsoleInput:
    content: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    data: Any


ClientMessage = Command | ConsoleInput | Heartbeat

# Which client message types each endpoint accepts.
_ACCEPTED: dict[Endpoint, frozenset[str]] = {
    Endpoint.MONITOR: frozenset({"command", "heartbeat"}),
    Endpoint.CONSOLE: frozenset({"console_input", "heartbeat"}),
    Endpoint.FLEET: frozenset({"heartbeat"}),
    Endpoint.SCREEN: frozenset(),
}
_ENDPOINT_NAMES = {
    Endpoint.MONITOR: "the monitoring endpoint",
    Endpoint.CONSOLE: "the console endpoint",
    Endpoint.FLEET: "the fleet endpoint",
    Endpoint.SCREEN: "the screen endpoint",
}
_SERVER_ONLY = frozenset(
    {
        "status",
        "metrics",
        "response",
        "console",
        "error",
        "connection",
        "viewers",
        "fleet_snapshot",
        "fleet_status",
        "fleet_summary",
        "fleet_added",
        "fleet_removed",
    }
)
_ACTIONS = {a.value: a for a in Action}


# The formatted whole second of the last timestamp: every message carries one, and
# strftime was 5.9 % of the server's samples under console_echo (10.6 → 2.4 µs a call).
_second: tuple[int, str] = (-1, "")


def iso_timestamp(t: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2023-05-23T12:34:56.123Z``."""
    global _second
    # Split as datetime.fromtimestamp does (microseconds rounded half to even), so the
    # result is the one it would give.
    frac, whole = math.modf(t)
    micro = round(frac * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    second = int(whole)
    if _second[0] != second:
        prefix = _dt.datetime.fromtimestamp(second, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = (second, prefix)
    return f"{_second[1]}{micro // 1000:03d}Z"


# Parsing


def parse_client_message(raw: str | bytes, endpoint: Endpoint) -> ClientMessage:
    """Turn one text frame into a typed message, or raise ``InvalidCommand``.

    The error carries the ``requestId`` whenever one could be read, so the client can
    match it to what it sent.
    """
    if isinstance(raw, bytes):
        raise InvalidCommand("binary frames are not accepted; send JSON text")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidCommand("message is not valid JSON") from None
    if not isinstance(message, dict):
        raise InvalidCommand("message must be a JSON object with 'type' and 'data'")

    data = message.get("data", {})
    request_id = _readable_request_id(data)
    kind = message.get("type")
    if not isinstance(kind, str):
        raise InvalidCommand("'type' must be a string", request_id)
    if kind not in _ACCEPTED[endpoint]:
        if kind in _ACCEPTED[Endpoint.MONITOR] | _ACCEPTED[Endpoint.CONSOLE]:
            raise InvalidCommand(f"'{kind}' messages are not accepted on {_ENDPOINT_NAMES[endpoint]}", request_id)
        if kind in _SERVER_ONLY:
            raise InvalidCommand(f"'{kind}' messages are sent by the server, not to it", request_id)
        raise InvalidCommand(f"unknown message type {kind!r}", request_id)
    timestamp = message.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise InvalidCommand("'timestamp' must be a string", request_id)

    if kind == "heartbeat":
        return Heartbeat(message.get("data"))
    if not isinstance(data, dict):
        raise InvalidCommand("'data' must be a JSON object", request_id)
    if kind == "command":
        return _parse_command(data, request_id)
    content = data.get("content")
    if not isinstance(content, str):
        raise InvalidCommand("console_input needs 'data.content' as a string")
    return ConsoleInput(content)


def _readable_request_id(data: Any) -> str | None:
    if isinstance(data, dict):
        rid = data.get("requestId")
        if isinstance(rid, str) and 0 < len(rid) <= MAX_REQUEST_ID_LENGTH:
            return rid
    return None


def _parse_command(data: dict[str, Any], request_id: str | None) -> Command:
    if "requestId" in data and data["requestId"] is not None and request_id is None:
        raise InvalidCommand(f"'requestId' must be a non-empty string of at most {MAX_REQUEST_ID_LENGTH} characters")
    action = data.get("action")
    if not isinstance(action, str):
        raise InvalidCommand("command needs 'data.action' as a string", request_id)
    if action not in _ACTIONS:
        known = ", ".join(_ACTIONS)
        raise InvalidCommand(f"unknown action {action!r}; expected one of: {known}", request_id)
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise InvalidCommand("'force' must be true or false", request_id)
    return Command(_ACTIONS[action], request_id, force)


# Building


def encode(kind: str, data: dict[str, Any], now: float) -> str:
    """One server message as JSON text (built once, sent to every recipient)."""
    return orjson.dumps({"type": kind, "timestamp": iso_timestamp(now), "data": data}).decode()


def connection_message(
    *,
    vm: str,
    session_id: str,
    user: str,
    permissions: list[str],
    heartbeat_interval: float,
    metrics_interval: float,
    now: float,
    extra: dict[str, Any] | None = None,
) -> str:
    data: dict[str, Any] = {
        "status": "connected",
        "vm": vm,
        "sessionId": session_id,
        "user": user,
        "permissions": permissions,
        "heartbeatInterval": heartbeat_interval,
        "metricsInterval": metrics_interval,
    }
    if extra:
        data.update(extra)
    return encode("connection", data, now)


def status_message(info: VMInfo, now: float) -> str:
    return encode(
        "status",
        {
            "status": info.status.value,
            "lastStateChange": iso_timestamp(info.last_state_change),
            "uptime": int(info.uptime),
        },
        now,
    )


def metrics_message(sample: MetricsSample, now: float) -> str:
    return encode(
        "metrics",
        {
            "cpu": {"utilization": round(sample.cpu_utilization, 2)},
            "memory": {"used": sample.memory_used, "total": sample.memory_total},
            "network": {"rxBytes": sample.net_rx_bytes, "txBytes": sample.net_tx_bytes},
            "disk": {"readBytes": sample.disk_read_bytes, "writeBytes": sample.disk_write_bytes},
        },
        now,
    )


def response_message(
    request_id: str,
    success: bool,
    message: str,
    now: float,
    *,
    code: ErrorCode | None = None,
    action: str | None = None,
    status: str | None = None,
) -> str:
    data: dict[str, Any] = {"requestId": request_id, "success": success, "message": message}
    if code is not None:
        data["code"] = code
    if action is not None:
        data["action"] = action
    if status is not None:
        data["status"] = status
    return encode("response", data, now)


# Console text of at least _DENSE_MIN characters whose first _DENSE_MIN have a
# newline in every _DENSE_RATIO is escaped by the stdlib (see console_message); the
# prefix is a sample because counting all of 64 KiB costs 16 us.
_DENSE_MIN = 1024
_DENSE_RATIO = 16


def _escape_ujson(text: str) -> str:
    """``text`` as a JSON string, the same characters as the stdlib's escaper gives.

    ujson walks the string once with a table, the stdlib twice (measure, then write):
    64 KiB of `yes` output 120 us against 242 us, `seq` 98 against 172, lines of 16
    characters 53 against 165 (one process, alternated). Its output equals the stdlib's
    for every code point (``tests/vmws/test_console_escape.py``); a lone surrogate, which
    it refuses and the console's decoder never produces, goes to the stdlib.
    """
    try:
        return _ujson.dumps(text, ensure_ascii=False, escape_forward_slashes=False)
    except UnicodeEncodeError:
        return _escape_json(text)


# The escaper for dense console text: ujson when the fast extra is installed.
escape_dense = _escape_json if _ujson is None else _escape_ujson


def console_message(
    content: str,
    now: float,
    *,
    eof: bool = False,
    offset: int | None = None,
    epoch: str | None = None,
) -> str:
    if len(content) >= _DENSE_MIN and content.count("\n", 0, _DENSE_MIN) * _DENSE_RATIO >= _DENSE_MIN:
        # orjson escapes control characters one at a time: on dense output (a `yes`
        # flood is two escapes in three characters) the stdlib's C escaper is 2.5x
        # faster (64 KiB: 92 us vs 228 us), ujson's twice as fast again (escape_dense).
        # Same bytes as the orjson path.
        tail = "" if offset is None else f',"offset":{offset}'
        if epoch is not None:  # hex digits only (the hub draws it): nothing to escape
            tail += f',"epoch":"{epoch}"'
        return (
            f'{{"type":"console","timestamp":"{iso_timestamp(now)}","data":{{"content":'
            f'{escape_dense(content)},"eof":{"true" if eof else "false"}{tail}}}}}'
        )
    data: dict[str, Any] = {"content": content, "eof": eof}
    if offset is not None:
        data["offset"] = offset
    if epoch is not None:
        data["epoch"] = epoch
    return encode("console", data, now)


def error_message(code: ErrorCode, message: str, now: float, *, request_id: str | None = None) -> str:
    data: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        data["requestId"] = request_id
    return encode("error", data, now)


def heartbeat_message(data: Any, now: float) -> str:
    return orjson.dumps({"type": "heartbeat", "timestamp": iso_timestamp(now), "data": data}).decode()


def viewers_message(viewers: list[tuple[str, str, float]], now: float) -> str:
    """Who is on a console (an extension): ``(user, mode, joined_at)`` in join order."""
    listing = [{"user": user, "mode": mode, "joinedAt": iso_timestamp(joined)} for user, mode, joined in viewers]
    return encode("viewers", {"viewers": listing}, now)
