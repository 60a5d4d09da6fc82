"""docs/asyncapi.yaml: AsyncAPI 3, every $ref resolves, and it names the same messages per
channel as the schema bundle and the end-to-end client's checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.schema.protocol_schema import CLIENT_MESSAGES, SERVER_MESSAGES

DOCS = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI = DOCS / "asyncapi.yaml"


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return loaded


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup (KeyError when it leads nowhere)."""
    node = document
    for token in filter(None, pointer.lstrip("/").split("/")):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(ref: str, base: Path, document: Any) -> Any:
    target, _, fragment = ref.partition("#")
    if target:
        path = (base.parent / target).resolve()
        document = (
            json.loads(path.read_text(encoding="utf-8"))
            if path.suffix == ".json"
            else yaml.safe_load(path.read_text(encoding="utf-8"))
        )
    return _pointer(document, fragment)


def test_parses_as_asyncapi_3() -> None:
    document = _document()
    assert re.fullmatch(r"3\.\d+\.\d+", str(document["asyncapi"]))
    assert {"info", "channels", "operations", "components"} <= set(document)
    assert document["info"]["title"] and document["info"]["version"]


def test_every_ref_resolves() -> None:
    document = _document()
    refs = _refs(document)
    assert len(refs) > 30
    for ref in refs:
        try:
            _resolve(ref, ASYNCAPI, document)
        except (KeyError, FileNotFoundError, TypeError) as exc:
            pytest.fail(f"$ref {ref!r} in {ASYNCAPI.name} does not resolve: {exc!r}")


def test_a_ref_that_leads_nowhere_is_caught() -> None:
    document = _document()
    with pytest.raises(KeyError):
        _resolve("schema/vmws-protocol.schema.json#/$defs/NoSuchMessage", ASYNCAPI, document)
    with pytest.raises(KeyError):
        _resolve("#/components/messages/nothing", ASYNCAPI, document)


def _payload_definition(message: dict[str, Any]) -> str:
    payload = message["payload"]
    assert payload["schemaFormat"] == "application/schema+json;version=2020-12"
    ref: str = payload["schema"]["$ref"]
    assert ref.startswith("schema/vmws-protocol.schema.json#/$defs/")
    return ref.rsplit("/", 1)[-1]


@pytest.mark.parametrize("channel", ["monitor", "console", "fleet"])
def test_channels_carry_the_schemas_messages_both_ways(channel: str) -> None:
    document = _document()
    spec = document["channels"][channel]
    addresses = {"monitor": "/ws/vms/{name}", "console": "/ws/vms/{name}/console", "fleet": "/ws/fleet"}
    assert spec["address"] == addresses[channel]
    assert channel == "fleet" or "name" in spec["parameters"]
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in document["operations"].values():
        if operation["channel"]["$ref"] != f"#/channels/{channel}":
            continue
        for ref in operation["messages"]:
            # An operation may only name its own channel's messages (AsyncAPI 3 rule).
            assert ref["$ref"].startswith(f"#/channels/{channel}/messages/"), ref
            message = _resolve(ref["$ref"], ASYNCAPI, document)
            if "$ref" in message:
                message = _resolve(message["$ref"], ASYNCAPI, document)
            by_action[operation["action"]].add(_payload_definition(message))
    assert by_action["send"] == set(SERVER_MESSAGES[channel].values())
    assert by_action["receive"] == set(CLIENT_MESSAGES[channel].values())


@pytest.mark.parametrize(
    ("channel", "query"), [("monitor", {"token"}), ("console", {"token", "since", "mode"}), ("fleet", {"token", "vms"})]
)
def test_websocket_bindings_name_the_query_parameters(channel: str, query: set[str]) -> None:
    binding = _document()["channels"][channel]["bindings"]["ws"]
    assert binding["method"] == "GET"
    assert binding["query"]["type"] == "object"
    assert set(binding["query"]["properties"]) == query
    assert binding["bindingVersion"]
