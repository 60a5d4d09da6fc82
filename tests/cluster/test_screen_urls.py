"""Unit tests of the screen forward's inputs: node URLs (from Redis: checked), the
narrowed ticket principal, and the choice between forwarding and 4006."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from tests.cluster.test_flags import _serve
from tests.vmws.fakes import FakeBackend
from vmws.auth import Permission, Principal
from vmws.cluster.backend import ClusterBackend
from vmws.cluster.screen_forward import (
    ScreenElsewhere,
    _screen_url,
    check_node_url,
    default_node_url,
    forward_principal,
    node_url_of,
)
from vmws.config import Config
from vmws.errors import NoScreen
from vmws.tickets import _principal_from, _principal_json

ALICE = Principal("alice", frozenset({Permission.READ, Permission.CONSOLE}), ("web-*",), 2e9, "j1")


@pytest.mark.parametrize("url", ["http://10.0.0.7:8081", "https://node-a.example", "http://[::1]:80/vmws"])
def test_node_urls_of_http_and_https_are_taken(url: str) -> None:
    assert check_node_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "http:// or https://"),
        ("ws://node:8080", "http:// or https://"),
        ("http://", "names a host"),
        ("http://user:pw@node:8080", "no user or password"),
        ("http://node:8080/?x=1", "no query or fragment"),
        ("http://node:8080#top", "no query or fragment"),
        ("http://node:99999", "port must be a number"),
        ("http://node:8080/\x1b[2J", "control characters"),
        ("http://no de", "no spaces"),
        ("http://" + "a" * 1000, "at most 1000 characters"),
    ],
)
def test_other_node_urls_are_refused_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("/", "/")):
        check_node_url(url)


def test_advertise_url_is_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="advertise-url: a node URL starts with http:// or https://"):
        Config(advertise_url="redis://node:6379")


def test_the_cli_refuses_a_bad_advertise_url_from_flag_or_env_without_a_traceback() -> None:
    for result in (_serve("--advertise-url", "ftp://node:21"), _serve(VMWS_ADVERTISE_URL="http://u:secret@node")):
        assert result.returncode == 2 and "advertise-url: a node URL" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_default_url_is_the_listener_with_a_wildcard_host_named() -> None:
    assert default_node_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert default_node_url("::1", 9) == "http://[::1]:9"
    assert not default_node_url("0.0.0.0", 8080).startswith("http://0.0.0.0")


@pytest.mark.parametrize(
    "raw",
    [None, b"not json", b"[1]", orjson.dumps({"incarnation": "i"}), orjson.dumps({"url": 7}), b"x" * 5000],
)
def test_a_node_record_without_a_usable_url_gives_none(raw: object) -> None:
    assert node_url_of(raw, "node-1") is None


def test_a_record_with_a_hostile_url_gives_none_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    assert node_url_of(orjson.dumps({"url": "gopher://evil"}), "node-1") is None
    assert "node 'node-1' advertises an unusable URL" in caplog.text


def test_the_forward_ticket_is_the_same_user_on_this_vm_only_and_watch_stays_watch() -> None:
    typist = forward_principal(ALICE, "web-1", view_only=False, via="node-2")
    assert (typist.sub, typist.jti, typist.expires_at, typist.via) == ("alice", "j1", 2e9, "node-2")
    assert typist.permissions == ALICE.permissions and typist.vms == ("=web-1",)
    assert not typist.may_reach("web-2")
    watcher = forward_principal(ALICE, "web-1", view_only=True, via="node-2")
    assert watcher.permissions == {Permission.READ, Permission.WATCH}
    # through Redis and back, the marker survives (the owner does not audit it again)
    assert _principal_from(_principal_json(watcher)) == watcher
    assert _principal_from(_principal_json(ALICE)).via is None


def test_the_owners_url_becomes_its_screen_endpoint() -> None:
    assert (
        _screen_url("https://n:8443/gw/", "a b", "vmt_x", view_only=True)
        == "wss://n:8443/gw/ws/vms/a%20b/screen?token=vmt_x&mode=watch"
    )
    assert _screen_url("http://n:1", "v", "vmt_y", view_only=False) == "ws://n:1/ws/vms/v/screen?token=vmt_y"


class _Redis:
    def __init__(self, node_value: bytes) -> None:
        self.node_value = node_value

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        owner = {b"owner": b"node-1", b"incarnation": b"inc-1", b"changed": b"1.0", b"uptime": b"2.0"}
        return {b"status": b"running", **owner}

    async def get(self, key: str) -> bytes:
        assert key == "vmws:node:node-1"
        return self.node_value


class _Relay:
    def __init__(self, node_value: bytes) -> None:
        self.redis = _Redis(node_value)

    def up_for(self) -> float:
        return math.inf

    async def listen(self, *args: Any) -> None:
        pass


async def _open_screen(node_value: dict[str, Any]) -> None:
    relay: Any = _Relay(orjson.dumps(node_value))
    backend = ClusterBackend(FakeBackend(), relay, now=lambda: 0.0, command_timeout=5.0)
    await backend.open_screen("elsewhere")


@pytest.mark.asyncio
async def test_another_nodes_vm_is_forwarded_when_its_node_has_an_address_else_4006() -> None:
    with pytest.raises(ScreenElsewhere) as forwarded:
        await _open_screen({"incarnation": "inc-1", "url": "http://10.0.0.7:8081"})
    assert (forwarded.value.node, forwarded.value.url) == ("node-1", "http://10.0.0.7:8081")
    for no_address in ({"incarnation": "inc-1"}, {"incarnation": "inc-1", "url": "javascript:alert(1)"}):
        with pytest.raises(NoScreen, match="served only by its own node 'node-1'"):
            await _open_screen(no_address)
