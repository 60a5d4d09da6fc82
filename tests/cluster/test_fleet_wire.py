"""What other nodes publish on ``vmws:fleet`` is hostile: checked, bounded, dropped with a log line."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from vmws.cluster.fleet import ClusterFleet, array_parts
from vmws.fleet import Fleet
from vmws.history import HistoryLimits, MetricsHistory


class Listener:
    def __init__(self) -> None:
        self.texts: list[dict[str, Any]] = []

    def send(self, text: str, *, droppable: bool = False) -> None:
        self.texts.append(orjson.loads(text))


def cluster_fleet() -> tuple[ClusterFleet, Listener]:
    from vmws.auth import Principal
    from vmws.fleet import FleetFilter

    fleet = Fleet(None, MetricsHistory(HistoryLimits()), 5.0, lambda: 1767000000.0, lambda vm: False)  # type: ignore[arg-type]
    listener = Listener()
    fleet.join(listener, FleetFilter.of(Principal("alice", frozenset(), ("*",), 0.0), None))
    listener.texts.clear()
    return ClusterFleet(fleet, None, None, "me", "inc-me", lambda vm: False), listener  # type: ignore[arg-type]


def summary(entries: list[Any], seq: int = 1, last: bool = True, node: str = "other") -> tuple[dict[str, Any], bytes]:
    return {"op": "summary", "node": node, "inc": "inc-1", "seq": seq, "last": last}, orjson.dumps(entries)


GOOD = ["web-1", "running", 1767000000.0, 12.0, 3.5, 100, 200]


def test_a_whole_summary_adds_its_vms_and_the_next_one_removes_the_missing() -> None:
    feed, listener = cluster_fleet()
    feed._on_message(*summary([GOOD], seq=1, last=False))
    assert listener.texts == []  # not whole yet
    feed._on_message(*summary([["web-2", "stopped", 1.0, 0.0, None, None, None]], seq=1))
    assert [(m["type"], m["data"]["name"]) for m in listener.texts] == [
        ("fleet_added", "web-1"),
        ("fleet_added", "web-2"),
    ]
    assert listener.texts[0]["data"]["cpu"] == {"utilization": 3.5}
    listener.texts.clear()
    feed._on_message(*summary([GOOD], seq=2))  # the same news again: nothing; web-2 is gone
    assert [(m["type"], m["data"]["name"]) for m in listener.texts] == [("fleet_removed", "web-2")]


@pytest.mark.parametrize(
    "entry",
    [
        ["x" * 256, "running", 1.0, 1.0, None, None, None],  # name over 255 bytes
        ["", "running", 1.0, 1.0, None, None, None],
        [7, "running", 1.0, 1.0, None, None, None],
        ["web-1", "exploded", 1.0, 1.0, None, None, None],
        ["web-1", "running", 1e300, 1.0, None, None, None],  # a time past the year 5000
        ["web-1", "running", -1.0, 1.0, None, None, None],
        ["web-1", "running", 1.0, 1.0, "50", 1, 2],
        ["web-1", "running", 1.0, 1.0, 50.0, True, 2],
        ["web-1", "running", 1.0, 1.0],
        {"name": "web-1"},
    ],
)
def test_a_malformed_entry_drops_its_message_with_one_log_line(entry: Any, caplog: pytest.LogCaptureFixture) -> None:
    feed, listener = cluster_fleet()
    header, data = summary([GOOD, entry])
    with caplog.at_level(logging.WARNING, "vmws.cluster"):
        feed._on_message(header, data)
        feed._on_message({**header, "op": "status"}, orjson.dumps(entry))
    assert listener.texts == []
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all("dropped a fleet message" in r.getMessage() and r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize("data", [b"not json", b'{"a": 1}', b"[1, 2]", b"\xff\xfe"])
def test_undecodable_entries_are_dropped(data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    feed, listener = cluster_fleet()
    with caplog.at_level(logging.WARNING, "vmws.cluster"):
        feed._on_message(summary([])[0], data)
    assert listener.texts == [] and len(caplog.records) == 1


def test_its_own_messages_and_unknown_ones_change_nothing() -> None:
    feed, listener = cluster_fleet()
    feed._on_message(*summary([GOOD], node="me"))
    feed._on_message({"op": "bogus", "node": "other", "inc": "x"}, b"")
    assert listener.texts == []


def test_parts_are_bounded_and_whole() -> None:
    items = [[f"vm-{i:05d}", "running", 1.0, 2.0, 3.0, 4, 5] for i in range(5000)]
    parts = array_parts(items, 16 * 1024)
    assert len(parts) > 1 and all(len(p) <= 16 * 1024 for p in parts)
    assert [x for p in parts for x in orjson.loads(p)] == items
    assert array_parts([]) == [b"[]"]
