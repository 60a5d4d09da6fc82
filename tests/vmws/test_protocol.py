"""Parsing client messages and building server messages (no sockets)."""

from __future__ import annotations

import orjson
import pytest

from vmws import protocol
from vmws.backend import Action, MetricsSample, VMInfo, VMStatus
from vmws.codes import ErrorCode
from vmws.errors import InvalidCommand
from vmws.protocol import Endpoint, parse_client_message

M, C = Endpoint.MONITOR, Endpoint.CONSOLE


def msg(kind: str, data: object = None, **extra: object) -> str:
    body: dict[str, object] = {"type": kind, "timestamp": "2023-05-23T12:34:56Z", **extra}
    if data is not None:
        body["data"] = data
    return orjson.dumps(body).decode()


@pytest.mark.parametrize("action", [a.value for a in Action])
def test_every_action_parses(action: str) -> None:
    parsed = parse_client_message(msg("command", {"action": action, "requestId": "r1"}), M)
    assert parsed == protocol.Command(Action(action), "r1", False)


def test_command_without_request_id_and_with_force() -> None:
    parsed = parse_client_message(msg("command", {"action": "stop", "force": True}), M)
    assert parsed == protocol.Command(Action.STOP, None, True)


def test_console_input_and_heartbeat() -> None:
    assert parse_client_message(msg("console_input", {"content": "ls\n"}), C) == protocol.ConsoleInput("ls\n")
    assert parse_client_message(msg("heartbeat", {"n": 1}), C) == protocol.Heartbeat({"n": 1})
    assert parse_client_message('{"type":"heartbeat"}', M) == protocol.Heartbeat(None)


@pytest.mark.parametrize(
    ("raw", "endpoint", "fragment", "request_id"),
    [
        ("not json", M, "not valid JSON", None),
        (b'{"type":"command"}', M, "binary frames", None),
        ("[1,2]", M, "JSON object", None),
        ('{"data":{}}', M, "'type' must be a string", None),
        (msg("reboot", {"requestId": "r9"}), M, "unknown message type 'reboot'", "r9"),
        (msg("status", {}), M, "sent by the server", None),
        (msg("console_input", {"content": "x"}), M, "not accepted on the monitoring endpoint", None),
        (msg("command", {"action": "start"}), C, "not accepted on the console endpoint", None),
        (msg("command", {"action": "explode", "requestId": "r2"}), M, "unknown action 'explode'", "r2"),
        (msg("command", {"requestId": "r3"}), M, "data.action", "r3"),
        (msg("command", {"action": 5}), M, "data.action", None),
        (msg("command", {"action": "stop", "force": "yes", "requestId": "r4"}), M, "'force'", "r4"),
        (msg("command", {"action": "stop", "requestId": 17}), M, "requestId", None),
        (msg("command", {"action": "stop", "requestId": "x" * 200}), M, "requestId", None),
        (msg("command", [1]), M, "'data' must be a JSON object", None),
        (msg("console_input", {"content": 3}), C, "data.content", None),
        ('{"type":"command","timestamp":5,"data":{"action":"start"}}', M, "'timestamp'", None),
    ],
)
def test_malformed_input_is_invalid_command(
    raw: str | bytes, endpoint: Endpoint, fragment: str, request_id: str | None
) -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_client_message(raw, endpoint)
    assert fragment in caught.value.message
    assert caught.value.code == "INVALID_COMMAND"
    assert caught.value.request_id == request_id


def test_timestamps_are_utc_iso_with_millis() -> None:
    assert protocol.iso_timestamp(1684845296.5) == "2023-05-23T12:34:56.500Z"


def test_status_and_metrics_messages_match_the_spec_shape() -> None:
    info = VMInfo("my-vm", VMStatus.RUNNING, last_state_change=1684845000.0, uptime=300.7)
    status = orjson.loads(protocol.status_message(info, 1684845296.0))
    assert status == {
        "type": "status",
        "timestamp": "2023-05-23T12:34:56.000Z",
        "data": {"status": "running", "lastStateChange": "2023-05-23T12:30:00.000Z", "uptime": 300},
    }
    sample = MetricsSample(0, 23.456, 2147483648, 4294967296, 1024000, 512000, 2048000, 1024000)
    metrics = orjson.loads(protocol.metrics_message(sample, 1684845296.0))
    assert metrics["type"] == "metrics"
    assert metrics["data"] == {
        "cpu": {"utilization": 23.46},
        "memory": {"used": 2147483648, "total": 4294967296},
        "network": {"rxBytes": 1024000, "txBytes": 512000},
        "disk": {"readBytes": 2048000, "writeBytes": 1024000},
    }


def test_response_error_console_messages() -> None:
    ok = orjson.loads(protocol.response_message("r1", True, "done", 0.0))
    assert ok["data"] == {"requestId": "r1", "success": True, "message": "done"}
    failed = orjson.loads(protocol.response_message("r2", False, "nope", 0.0, code=ErrorCode.VM_NOT_RUNNING))
    assert failed["data"]["code"] == "VM_NOT_RUNNING" and failed["data"]["success"] is False
    error = orjson.loads(protocol.error_message(ErrorCode.INVALID_COMMAND, "bad", 0.0, request_id="r3"))
    assert error["data"] == {"code": "INVALID_COMMAND", "message": "bad", "requestId": "r3"}
    console = orjson.loads(protocol.console_message("hi", 0.0, offset=10))
    assert console["data"] == {"content": "hi", "eof": False, "offset": 10}


@pytest.mark.parametrize(
    "content",
    ["y\n" * 40_000, "line\r\n" * 9000 + 'tail "quoted" \\ \x1b[31mred\x1b[0m é€😀 \x00\x7f', "\n" * 5000],
)
def test_dense_console_output_fast_path_gives_the_same_bytes(content: str) -> None:
    fast = protocol.console_message(content, 1684845296.0, offset=7)
    plain = protocol.encode("console", {"content": content, "eof": False, "offset": 7}, 1684845296.0)
    assert orjson.loads(fast) == orjson.loads(plain)
    assert orjson.loads(fast)["data"]["content"] == content
