"""The published protocol schema (docs/schema/), loaded for tests that check messages.

``check_received`` and ``check_sent`` raise ``SchemaViolation`` naming the message,
the endpoint and what is wrong, so a message the docs do not describe fails the test
that saw it. The message's own definition is picked by its ``type`` (rather than
trying the endpoint's whole ``oneOf``) so the failure says which field is wrong.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from jsonschema import Draft202012Validator

__all__ = [
    "SCHEMA_DIR",
    "SCHEMA_PATH",
    "SCHEMA_ID",
    "SchemaViolation",
    "schema",
    "validator",
    "problems",
    "check_received",
    "check_sent",
    "SERVER_MESSAGES",
    "CLIENT_MESSAGES",
]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"
SCHEMA_PATH = SCHEMA_DIR / "vmws-protocol.schema.json"

# Per endpoint ("monitor", "console" or "fleet"), message type -> its definition in the bundle.
SERVER_MESSAGES: dict[str, dict[str, str]] = {
    "monitor": {
        "connection": "ConnectionMessage",
        "status": "StatusMessage",
        "metrics": "MetricsMessage",
        "response": "ResponseMessage",
        "error": "ErrorMessage",
        "heartbeat": "ServerHeartbeatMessage",
    },
    "console": {
        "connection": "ConnectionMessage",
        "console": "ConsoleMessage",
        "error": "ErrorMessage",
        "heartbeat": "ServerHeartbeatMessage",
        "viewers": "ViewersMessage",
    },
    "fleet": {
        "connection": "FleetConnectionMessage",
        "fleet_snapshot": "FleetSnapshotMessage",
        "fleet_status": "FleetStatusMessage",
        "fleet_summary": "FleetSummaryMessage",
        "fleet_added": "FleetAddedMessage",
        "fleet_removed": "FleetRemovedMessage",
        "error": "ErrorMessage",
        "heartbeat": "ServerHeartbeatMessage",
    },
}
CLIENT_MESSAGES: dict[str, dict[str, str]] = {
    "monitor": {"command": "CommandMessage", "heartbeat": "ClientHeartbeatMessage"},
    "console": {"console_input": "ConsoleInputMessage", "heartbeat": "ClientHeartbeatMessage"},
    "fleet": {"heartbeat": "ClientHeartbeatMessage"},
}


class SchemaViolation(AssertionError):
    """A message that docs/schema/vmws-protocol.schema.json does not describe."""


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


SCHEMA_ID: str = schema()["$id"]


@functools.cache
def validator(definition: str) -> Draft202012Validator:
    """A validator for one ``$defs`` entry of the bundle (its ``$ref``s resolved)."""
    resource = referencing.Resource.from_contents(schema(), default_specification=referencing.jsonschema.DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(SCHEMA_ID, resource)
    return Draft202012Validator(
        {"$ref": f"{SCHEMA_ID}#/$defs/{definition}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def problems(message: Any, definition: str) -> list[str]:
    """What is wrong with ``message`` as a ``definition`` (empty when it conforms)."""
    errors = sorted(validator(definition).iter_errors(message), key=jsonschema.exceptions.relevance)
    return [f"at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]


def _check(message: Any, table: dict[str, str], endpoint: str, direction: str) -> None:
    kind = message.get("type") if isinstance(message, dict) else None
    definition = table.get(kind) if isinstance(kind, str) else None
    if definition is None:
        known = ", ".join(table)
        raise SchemaViolation(
            f"{direction} on the {endpoint} endpoint: type {kind!r} is not described by the schema "
            f"(expected one of: {known}): {_short(message)}"
        )
    found = problems(message, definition)
    if found:
        raise SchemaViolation(
            f"{direction} on the {endpoint} endpoint does not match docs/schema ({definition}): "
            f"{'; '.join(found[:5])}: {_short(message)}"
        )


def check_received(message: Any, endpoint: str) -> None:
    """Raise ``SchemaViolation`` unless ``message`` is a server message the schema describes."""
    _check(message, SERVER_MESSAGES[endpoint], endpoint, "server message")


def check_sent(message: Any, endpoint: str) -> None:
    """Raise ``SchemaViolation`` unless ``message`` is a client message the schema describes."""
    _check(message, CLIENT_MESSAGES[endpoint], endpoint, "client message")


def _short(message: Any, limit: int = 300) -> str:
    text = repr(message)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
