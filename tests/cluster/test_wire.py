"""Messages between nodes: versioned, and everything read from Redis checked."""

from __future__ import annotations

import logging

import pytest

from vmws.backend import VMStatus
from vmws.cluster import wire
from vmws.cluster.backend import live_incarnation, parse_record


def test_a_message_round_trips_with_its_version_and_bytes() -> None:
    raw = wire.encode({"op": "console", "o": 7, "e": "ab"}, b"\x00\xff\n raw")
    assert wire.decode(raw, "chan") == ({"v": wire.VERSION, "op": "console", "o": 7, "e": "ab"}, b"\x00\xff\n raw")


def test_a_version_this_node_does_not_speak_is_refused_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "vmws.cluster"):
        assert wire.decode(b'{"v": 2, "op": "status"}\n', "vmws:vm:{x}:out") is None
    assert "version 2" in caplog.text and f"speaks version {wire.VERSION}" in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        "text, not bytes",
        b"no newline",
        b"[1, 2]\n",
        b"not json\n",
        b'{"v": 1}\n',
        b'{"v": 1, "op": 5}\n',
        b'{"v": 1, "op": "x", "pad": "' + b"a" * 5000 + b'"}\n',
        b'{"v": 1, "op": "x"}\n' + b"x" * (2 * 1024 * 1024),
    ],
)
def test_malformed_or_oversized_messages_are_dropped_not_raised(raw: object) -> None:
    assert wire.decode(raw, "chan") is None


def test_fields_are_checked_for_type_and_size() -> None:
    with pytest.raises(ValueError):
        wire.field_str({"node": "n" * 300}, "node")
    with pytest.raises(ValueError):
        wire.field_int({"o": True}, "o")
    with pytest.raises(ValueError):
        wire.field_int({"o": -1}, "o")
    assert wire.field_int({"o": 42}, "o") == 42


def test_records_and_liveness_values_from_redis_are_checked() -> None:
    good = {b"status": b"running", b"owner": b"node-1", b"incarnation": b"abc", b"changed": b"1.5", b"uptime": b"3"}
    info, owner = parse_record("vm", good)
    assert info.status is VMStatus.RUNNING and owner == ("node-1", "abc")
    for bad in (
        {**good, b"status": b"exploded"},
        {**good, b"changed": b"nan"},
        {**good, b"owner": b"x" * 300},
        {k: v for k, v in good.items() if k != b"incarnation"},
    ):
        with pytest.raises(ValueError):
            parse_record("vm", bad)
    assert live_incarnation(b'{"incarnation": "abc"}', "abc")
    assert not live_incarnation(b'{"incarnation": "old"}', "abc")
    assert not live_incarnation(b"[]", "abc") and not live_incarnation(None, "abc")
    assert not live_incarnation(b"{" * 5000, "abc")


def test_numbers_from_another_node_are_bounded() -> None:
    good = {b"status": b"running", b"owner": b"node-1", b"incarnation": b"abc", b"changed": b"1.5", b"uptime": b"3"}
    for changed in (b"1e300", b"-1", b"inf"):
        with pytest.raises(ValueError):
            parse_record("vm", {**good, b"changed": changed})
