"""docs/schema/vmws-protocol.schema.json: a valid 2020-12 schema that accepts what vmws
sends and what clients may send, and refuses what the docs do not describe."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from tests.schema.protocol_schema import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    SchemaViolation,
    check_received,
    check_sent,
    problems,
    schema,
)
from vmws import protocol
from vmws.auth import Permission
from vmws.backend import Action, MetricsSample, VMInfo, VMStatus
from vmws.codes import ErrorCode
from vmws.errors import AuthError, InvalidCommand, VMNotFound, VMNotRunning, VMWSError

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOW = 1_684_845_296.123


def test_bundle_is_a_valid_2020_12_schema() -> None:
    bundle = schema()
    assert bundle["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(bundle)
    for definition in bundle["$defs"].values():
        Draft202012Validator.check_schema(definition)


def test_every_definition_named_by_an_endpoint_exists_and_every_message_is_reachable() -> None:
    defs = schema()["$defs"]
    named = {d for table in (*SERVER_MESSAGES.values(), *CLIENT_MESSAGES.values()) for d in table.values()}
    assert named <= set(defs)
    in_unions = {
        ref["$ref"].split("/")[-1]
        for union in (
            "MonitorServerMessage",
            "ConsoleServerMessage",
            "FleetServerMessage",
            "MonitorClientMessage",
            "ConsoleClientMessage",
            "FleetClientMessage",
        )
        for ref in defs[union]["oneOf"]
    }
    assert in_unions == named
    assert named == {name for name in defs if name.endswith("Message") and "oneOf" not in defs[name]}


def test_enums_match_the_python_tree() -> None:
    defs = schema()["$defs"]
    assert defs["Action"]["enum"] == [a.value for a in Action]
    assert defs["VMStatus"]["enum"] == [s.value for s in VMStatus]
    assert defs["Permission"]["enum"] == [p.value for p in Permission]
    assert defs["ErrorCode"]["enum"] == [c.value for c in ErrorCode]
    codes = {cls.code for cls in (VMWSError, InvalidCommand, AuthError, VMNotFound, VMNotRunning)}
    assert codes == set(ErrorCode)
    assert defs["RequestId"]["maxLength"] == protocol.MAX_REQUEST_ID_LENGTH


# What the server really builds (vmws/protocol.py), for every message and option.


def _built() -> list[tuple[str, str]]:
    info = VMInfo("my-vm", VMStatus.RUNNING, NOW - 300, 300.4)
    sample = MetricsSample(NOW, 23.456, 2 << 30, 4 << 30, 1024000, 512000, 2048000, 1024000)
    both = ["monitor", "console"]
    out = [
        *[
            (
                e,
                protocol.connection_message(
                    vm="my-vm",
                    session_id="abc",
                    user="alice",
                    permissions=["read", "console"],
                    heartbeat_interval=30,
                    metrics_interval=0.5,
                    now=NOW,
                ),
            )
            for e in both
        ],
        ("monitor", protocol.status_message(info, NOW)),
        ("monitor", protocol.status_message(VMInfo("db-1", VMStatus.STOPPED, NOW, 0), NOW)),
        ("monitor", protocol.metrics_message(sample, NOW)),
        (
            "monitor",
            protocol.response_message(
                "r1", True, "Command 'start' completed successfully", NOW, action="start", status="running"
            ),
        ),
        (
            "monitor",
            protocol.response_message(
                "r2", False, "VM is not running", NOW, code=ErrorCode.VM_NOT_RUNNING, action="restart"
            ),
        ),
        (
            "console",
            protocol.console_message("Ubuntu 22.04 LTS\nmy-vm login: ", NOW, offset=0, epoch="5f0c1a2b3c4d5e6f"),
        ),
        (
            "console",
            protocol.console_message("y\n" * 2000, NOW, offset=77, epoch="5f0c1a2b3c4d5e6f"),
        ),  # the stdlib-escaped fast path
        ("console", protocol.console_message("", NOW, eof=True, offset=123, epoch="5f0c1a2b3c4d5e6f")),
        *[
            (e, protocol.error_message(ErrorCode.INVALID_COMMAND, "unknown action 'fly'", NOW, request_id="r7"))
            for e in both
        ],
        *[(e, protocol.error_message(ErrorCode.AUTH_ERROR, "token has expired", NOW)) for e in both],
        *[(e, protocol.heartbeat_message({"seq": 3, "interval": 30}, NOW)) for e in both],
        *[(e, protocol.heartbeat_message(None, NOW)) for e in both],
        *[(e, protocol.heartbeat_message({"anything": ["the", "client", "sent"]}, NOW)) for e in both],
    ]
    return out


@pytest.mark.parametrize(("endpoint", "text"), _built(), ids=lambda v: v if v in ("monitor", "console") else None)
def test_what_the_server_builds_is_described(endpoint: str, text: str) -> None:
    check_received(orjson.loads(text), endpoint)


# Negative examples: one per message, each a change the docs do not describe.


def _message(kind: str, endpoint: str = "monitor") -> dict[str, Any]:
    """The first built message of ``kind`` (for a response: the success)."""
    return next(m for e, t in _built() if e == endpoint and (m := orjson.loads(t))["type"] == kind)


SERVER_BREAKAGES: list[tuple[str, str, str, Any]] = [
    # (endpoint, type, dotted path to change, new value or DELETE)
    ("monitor", "connection", "data.status", "open"),
    ("monitor", "connection", "data.permissions", ["read", "superuser"]),
    ("monitor", "connection", "data.heartbeatInterval", 0),
    ("monitor", "connection", "data.sessionId", "DELETE"),
    ("monitor", "connection", "data.node", "n1"),
    ("monitor", "status", "data.status", "booting"),
    ("monitor", "status", "data.uptime", 1.5),
    ("monitor", "status", "data.lastStateChange", "yesterday"),
    ("monitor", "status", "timestamp", "2023-05-23T12:34:56Z"),
    ("monitor", "status", "timestamp", "DELETE"),
    ("monitor", "metrics", "data.cpu.utilization", "23%"),
    ("monitor", "metrics", "data.memory.used", -1),
    ("monitor", "metrics", "data.network.txBytes", "DELETE"),
    ("monitor", "metrics", "data.disk.iops", 3),
    ("monitor", "response", "data.success", "yes"),
    ("monitor", "response", "data.requestId", ""),
    ("monitor", "response", "data.status", "DELETE"),  # a success without the resulting status
    ("monitor", "response", "data.code", "VM_NOT_RUNNING"),  # a success with an error code
    ("monitor", "response", "data.action", "fly"),
    ("monitor", "error", "data.code", "OOPS"),
    ("monitor", "error", "data.message", "DELETE"),
    ("monitor", "error", "data.requestId", 7),
    ("monitor", "heartbeat", "data", "DELETE"),
    ("monitor", "heartbeat", "extra", True),
    ("console", "console", "data.content", None),
    ("console", "console", "data.eof", "DELETE"),
    ("console", "console", "data.offset", -1),
    ("console", "console", "data.offset", "DELETE"),
    ("console", "console", "data.html", "<b>"),
]


def _set(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(message)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value == "DELETE":
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(("endpoint", "kind", "path", "value"), SERVER_BREAKAGES)
def test_a_server_message_the_docs_do_not_describe_is_refused(endpoint: str, kind: str, path: str, value: Any) -> None:
    good = _message(kind, endpoint)
    check_received(good, endpoint)
    with pytest.raises(SchemaViolation):
        check_received(_set(good, path, value), endpoint)


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("monitor", "console"),
        ("console", "status"),
        ("console", "metrics"),
        ("console", "response"),
        ("monitor", "command"),
        ("monitor", "bogus"),
    ],
)
def test_a_message_type_foreign_to_the_endpoint_is_refused(endpoint: str, kind: str) -> None:
    message = {"type": kind, "timestamp": "2023-05-23T12:34:56.123Z", "data": {}}
    with pytest.raises(SchemaViolation, match="not described"):
        check_received(message, endpoint)


def test_a_failed_response_needs_its_error_code() -> None:
    failed = _set(_message("response"), "data.success", False)
    assert any("code" in p for p in problems(failed, "ResponseMessage"))
    ok = _set(_set(failed, "data.status", "DELETE"), "data.code", "VM_NOT_RUNNING")
    assert problems(ok, "ResponseMessage") == []


# Client messages: what the server accepts (vmws.protocol.parse_client_message) matches the schema.

CLIENT_EXAMPLES: list[tuple[str, Any, bool]] = [
    # (endpoint, message, the server accepts it)
    (
        "monitor",
        {"type": "command", "timestamp": "2023-05-23T12:34:56Z", "data": {"action": "start", "requestId": "c1"}},
        True,
    ),
    ("monitor", {"type": "command", "data": {"action": "pause"}}, True),
    ("monitor", {"type": "command", "data": {"action": "stop", "force": True}}, True),
    ("monitor", {"type": "heartbeat", "data": {"t": 1}}, True),
    ("monitor", {"type": "heartbeat"}, True),
    ("console", {"type": "console_input", "timestamp": "2023-05-23T12:34:56Z", "data": {"content": "ls -la\n"}}, True),
    ("console", {"type": "heartbeat", "data": [1, 2]}, True),
    ("monitor", {"type": "command", "data": {"action": "fly"}}, False),
    ("monitor", {"type": "command", "data": {"action": "stop", "force": "yes"}}, False),
    ("monitor", {"type": "command", "data": {"action": "start", "requestId": ""}}, False),
    ("monitor", {"type": "command", "data": {"action": "start", "requestId": "x" * 129}}, False),
    ("monitor", {"type": "command", "data": {}}, False),
    ("monitor", {"type": "command"}, False),
    ("monitor", {"type": "command", "timestamp": 5, "data": {"action": "start"}}, False),
    ("monitor", {"type": "console_input", "data": {"content": "ls\n"}}, False),
    ("console", {"type": "command", "data": {"action": "stop"}}, False),
    ("console", {"type": "console_input", "data": {"content": 5}}, False),
    ("console", {"type": "console_input", "data": "ls"}, False),
    ("monitor", {"type": "status", "data": {}}, False),
    ("monitor", {"data": {}}, False),
]


@pytest.mark.parametrize(("endpoint", "message", "accepted"), CLIENT_EXAMPLES)
def test_client_messages_the_schema_accepts_are_the_ones_the_server_accepts(
    endpoint: str,
    message: Any,
    accepted: bool,
) -> None:
    try:
        protocol.parse_client_message(json.dumps(message), protocol.Endpoint(endpoint))
        server_accepts = True
    except InvalidCommand:
        server_accepts = False
    assert server_accepts is accepted
    if accepted:
        check_sent(message, endpoint)
    else:
        with pytest.raises(SchemaViolation):
            check_sent(message, endpoint)


# The contract's own examples (docs/websocket-api.md).


def _contract_examples() -> list[dict[str, Any]]:
    text = (DOCS / "websocket-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    examples = []
    for block in blocks:
        try:
            examples.append(json.loads(block))
        except json.JSONDecodeError:
            continue  # the envelope sketch has a comment in it
    return examples


def test_the_contracts_examples_are_described_with_vmws_documented_refinements() -> None:
    """Client examples as written; server examples once the refinements of docs/protocol.md
    are applied: timestamps with milliseconds, `offset` and `epoch` on console output, and the
    resulting `status` (and `action`) on a successful response."""
    examples = _contract_examples()
    kinds = {e["type"] for e in examples}
    assert kinds >= {"status", "metrics", "command", "response", "console", "console_input", "error"}
    for example in examples:
        kind = example["type"]
        endpoint = "console" if kind in ("console", "console_input") else "monitor"
        if kind in CLIENT_MESSAGES[endpoint] and kind != "heartbeat":
            check_sent(example, endpoint)
            continue
        refined = copy.deepcopy(example)
        refined["timestamp"] = refined["timestamp"].replace("Z", ".000Z")
        data = refined["data"]
        if "lastStateChange" in data:
            data["lastStateChange"] = data["lastStateChange"].replace("Z", ".000Z")
        if kind == "console":
            data["offset"] = 0
            data["epoch"] = "5f0c1a2b3c4d5e6f"
        if kind == "response":
            data.update(action="start", status="running")
        check_received(refined, endpoint)
