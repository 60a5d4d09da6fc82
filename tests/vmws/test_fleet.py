"""The fleet view's sweep (vmws/fleet.py) with a fake backend: summaries built once per
filter, VMs coming and going, watched VMs left to the hub's sampler, frames bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

import vmws.fleet
from tests.vmws.fakes import FakeBackend, FakePeer
from vmws.auth import Principal
from vmws.backend import MetricsSample, VMInfo, VMStatus
from vmws.fleet import FRAME_BYTES, Fleet, FleetFilter, frames
from vmws.history import HistoryLimits, MetricsHistory

pytestmark = pytest.mark.asyncio


class CountingBackend(FakeBackend):
    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(names)
        self.sampled: list[str] = []

    async def sample(self, name: str) -> MetricsSample:
        self.sampled.append(name)
        return MetricsSample(0.0, 12.5, 100, 200, 0, 0, 0, 0)


def scope(*patterns: str, glob: str | None = None) -> FleetFilter:
    return FleetFilter.of(Principal("someone", frozenset(), patterns or None, 0.0), glob)


def make(names: tuple[str, ...], watched: frozenset[str] = frozenset()) -> tuple[Fleet, CountingBackend]:
    backend = CountingBackend(names)
    clock = iter(range(1_000_000, 2_000_000, 5))
    fleet = Fleet(backend, MetricsHistory(HistoryLimits()), 5.0, lambda: float(next(clock)), watched.__contains__)
    return fleet, backend


async def test_a_summary_is_built_once_per_distinct_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet, _ = make(("web-1", "web-2", "db-1"))
    await fleet.sweep()
    peers = [FakePeer(f"u{i}") for i in range(4)]
    fleet.join(peers[0], scope("web-*"))
    fleet.join(peers[1], scope("web-*"))  # another token, same patterns: same filter
    fleet.join(peers[2], scope("web-*", glob="*-2"))
    fleet.join(peers[3], scope())
    built: list[str] = []

    def counting(kind: str, entries: Any, now: float) -> list[str]:
        built.append(kind)
        return frames(kind, entries, now)

    monkeypatch.setattr(vmws.fleet, "frames", counting)
    await fleet.sweep()
    assert built == ["fleet_summary"] * 3
    summaries = [p.of_type("fleet_summary")[-1]["vms"] for p in peers]
    assert summaries[0] == summaries[1] and [vm["name"] for vm in summaries[0]] == ["web-1", "web-2"]
    assert [vm["name"] for vm in summaries[2]] == ["web-2"]
    assert [vm["name"] for vm in summaries[3]] == ["db-1", "web-1", "web-2"]
    assert summaries[3][0] == {
        "name": "db-1",
        "status": "running",
        "cpu": {"utilization": 12.5},
        "memory": {"used": 100, "total": 200},
    }


async def test_globs_are_matched_when_a_filter_first_joins_and_for_new_vms_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet, backend = make(tuple(f"vm-{i}" for i in range(50)))
    await fleet.sweep()
    calls: list[str] = []
    admits = FleetFilter.admits

    def counting(self: FleetFilter, name: str) -> bool:
        calls.append(name)
        return admits(self, name)

    monkeypatch.setattr(FleetFilter, "admits", counting)
    peers = [FakePeer("a"), FakePeer("b")]
    for peer in peers:
        fleet.join(peer, scope(glob="vm-1*"))
    assert len(calls) == 50  # once per VM for the filter, not per socket
    for _ in range(3):
        await fleet.sweep()
    assert len(calls) == 50  # summaries look the answer up
    backend.names = (*backend.names, "vm-100")
    await fleet.sweep()
    assert calls[50:] == ["vm-100"]
    assert [m["name"] for m in peers[0].of_type("fleet_added")] == ["vm-100"]
    assert len(peers[0].of_type("fleet_summary")[-1]["vms"]) == 12  # vm-1, vm-10..19, vm-100


async def test_a_snapshot_is_built_once_per_filter_until_the_fleet_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet, _ = make(("web-1", "web-2"))
    await fleet.sweep()
    built: list[str] = []

    def counting(kind: str, entries: Any, now: float) -> list[str]:
        built.append(kind)
        return frames(kind, entries, now)

    monkeypatch.setattr(vmws.fleet, "frames", counting)
    peers = [FakePeer(f"u{i}") for i in range(5)]
    for peer in peers[:3]:
        fleet.join(peer, scope("web-*"))
    assert built == ["fleet_snapshot"]
    fleet._on_status(VMInfo("web-1", VMStatus.PAUSED, 1.0, 0.0))
    fleet.join(peers[3], scope("web-*"))
    assert built == ["fleet_snapshot"] * 2  # rebuilt: web-1 changed
    snapshot = peers[3].of_type("fleet_snapshot")[0]["vms"]
    assert [(vm["name"], vm["status"]) for vm in snapshot] == [("web-1", "paused"), ("web-2", "running")]
    assert peers[0].sent[0] == peers[1].sent[0]
    for peer in peers[:4]:
        fleet.leave(peer)
    fleet.join(peers[4], scope("web-*"))  # the last one left: nothing kept for the filter
    assert built == ["fleet_snapshot"] * 3


async def test_vms_coming_and_going_are_announced_to_those_who_may_see_them() -> None:
    fleet, backend = make(("web-1", "db-1"))
    await fleet.sweep()
    web, everyone = FakePeer("web"), FakePeer("all")
    fleet.join(web, scope("web-*"))
    fleet.join(everyone, scope())
    backend.names = ("web-1", "web-2", "db-2")  # db-1 undefined; web-2 and db-2 defined
    await fleet.sweep()
    assert [m["name"] for m in web.of_type("fleet_added")] == ["web-2"]
    assert web.of_type("fleet_removed") == []
    assert sorted(m["name"] for m in everyone.of_type("fleet_added")) == ["db-2", "web-2"]
    assert everyone.of_type("fleet_removed") == [{"name": "db-1", "status": "running"}]
    assert "db-1" not in fleet.history and "web-2" in fleet.history


async def test_watched_vms_are_left_to_the_hub_and_its_samples_kept() -> None:
    fleet, backend = make(("a", "b"), watched=frozenset({"a"}))
    await fleet.start()
    try:
        await fleet.sweep()
        assert set(backend.sampled) == {"b"}
        fleet.record("a", MetricsSample(0.0, 50.0, 1, 2, 3, 4, 5, 6))
        latest = fleet.history.latest("a")
        assert latest is not None and latest.cpu_utilization == 50.0
        fleet.record("unknown", MetricsSample(0.0, 1.0, 1, 2, 3, 4, 5, 6))
        assert "unknown" not in fleet.history
    finally:
        await fleet.close()


async def test_frames_stay_under_the_bound_even_with_hostile_names() -> None:
    names = ["\x01" * 255 + str(i) for i in range(200)] + ["é" * 100 + str(i) for i in range(200)]
    texts = frames("fleet_summary", ({"name": n, "status": "running"} for n in names), 0.0)
    assert len(texts) > 1 and all(len(t.encode()) <= FRAME_BYTES for t in texts)
    decoded = [orjson.loads(t)["data"] for t in texts]
    assert [d["complete"] for d in decoded] == [False] * (len(texts) - 1) + [True]
    assert [vm["name"] for d in decoded for vm in d["vms"]] == names
    empty = orjson.loads(frames("fleet_snapshot", [], 0.0)[0])["data"]
    assert empty == {"vms": [], "complete": True}


async def test_a_sweep_lets_other_sockets_run_while_it_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sweep of 3,000 simulated VMs once held the event loop for 80-240 ms: it hands the
    # loop back every SWEEP_SLICE_SECONDS (0 here: after every VM) and still samples all.
    monkeypatch.setattr(vmws.fleet, "SWEEP_SLICE_SECONDS", 0.0)
    names = tuple(f"vm-{i}" for i in range(50))
    fleet, backend = make(names)
    ran_during: list[int] = []

    async def other_socket() -> None:
        while True:
            ran_during.append(len(backend.sampled))
            await asyncio.sleep(0)

    other = asyncio.ensure_future(other_socket())
    await asyncio.sleep(0)
    await fleet.sweep()
    other.cancel()
    assert sorted(backend.sampled) == sorted(names)
    assert any(0 < n < len(names) for n in ran_during), "the loop ran nothing else in the middle of the sweep"
