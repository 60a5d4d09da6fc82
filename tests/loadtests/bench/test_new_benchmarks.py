"""The benchmarks added for per-core performance, run for real (small and short) against
``vmws serve`` and the baseline, and the saturation climb's stopping rules."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.bench import saturation, screen_relay, seqflood
from loadtests.bench.common import Measured
from loadtests.procs import ServerProcess


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_seq_flood_measures_console_output_of_both_commands(tmp_path: Path) -> None:
    outcome = await seqflood.run(tmp_path, rounds=1, seconds=0.5, loops=("asyncio",))
    rates = outcome.figures["console_mb_per_s"]
    assert rates["vmws[asyncio] yes"] > 0 and rates["vmws[asyncio] seq"] > 0
    assert outcome.line().startswith("seq_flood ratio=")
    assert not math.isnan(outcome.ratio) or outcome.invalid


@pytest.mark.timeout(180)
@pytest.mark.asyncio
async def test_saturation_climbs_both_servers_over_real_sockets(tmp_path: Path) -> None:
    outcome = await saturation.run(tmp_path, steps=(5, 10), seconds=0.5, budget=60, loops=("asyncio",))
    for name in ("vmws[asyncio]", "baseline"):
        steps = outcome.figures[name]["steps"]
        assert steps and steps[0][0] == 5  # (consoles, p99 ms, server CPU, client CPU)
        assert all(p99 > 0 for _, p99, _, _ in steps)
    assert outcome.line().startswith("console_echo_saturation ratio=")


@pytest.mark.timeout(180)
@pytest.mark.asyncio
async def test_screen_relay_streams_one_busy_screen_through_vmws_and_websockify(tmp_path: Path) -> None:
    outcome = await screen_relay.run(tmp_path, rounds=1, seconds=1.0)
    for relay in ("vmws", "websockify"):
        # seq scrolls tty1: every update redraws the text rows, Raw, 640x400 at 32 bits
        assert outcome.figures["updates_per_s"][relay] > 0, relay
        assert outcome.figures["mb_per_s"][relay] > 0.2, relay
        assert outcome.figures["p99_ms"][relay] > 0, relay
    assert outcome.line().startswith("screen_relay ratio=")


def _scripted(monkeypatch: pytest.MonkeyPatch, rounds: list[Measured]) -> Iterator[Measured]:
    script = iter(rounds)

    async def fake_round(server: object, urls: list[str], rate: float, seconds: float) -> Measured:
        return next(script)

    monkeypatch.setattr(saturation, "typing_round", fake_round)
    return script


@pytest.mark.asyncio
async def test_a_climb_stops_at_the_first_step_over_50_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 breaks twice (it is run once more before it counts as broken)
    _scripted(
        monkeypatch,
        [
            Measured((3.0, 0.3, 0), 0.1),
            Measured((49.0, 0.6, 0), 0.2),
            Measured((51.0, 0.9, 0), 0.2),
            Measured((60.0, 0.9, 0), 0.2),
        ],
    )
    climb = await saturation._climb(
        "x", ServerProcess.__new__(ServerProcess), lambda n: [], (100, 200, 300, 400), 5.0, 1.0, deadline=math.inf
    )
    assert (climb.held, climb.stopped_by, climb.decided, climb.shown()) == (200, "p99", True, "200")
    assert climb.steps[-1][1] == 51.0  # the better of the two rounds is kept


@pytest.mark.asyncio
async def test_one_burst_over_50_ms_does_not_end_a_climb(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [Measured((300.0, 0.3, 0), 0.1), Measured((4.0, 0.3, 0), 0.1), Measured((5.0, 0.5, 0), 0.1)])
    climb = await saturation._climb(
        "x", ServerProcess.__new__(ServerProcess), lambda n: [], (100, 200), 5.0, 1.0, deadline=math.inf
    )
    assert (climb.held, climb.stopped_by) == (200, "top")


@pytest.mark.asyncio
async def test_a_climb_that_a_lost_key_or_a_busy_client_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [Measured((3.0, 0.3, 0), 0.1), Measured((3.0, 0.3, 1), 0.1)])
    lost = await saturation._climb(
        "x", ServerProcess.__new__(ServerProcess), lambda n: [], (100, 200), 5.0, 1.0, deadline=math.inf
    )
    assert (lost.held, lost.stopped_by, lost.decided) == (100, "lost", True)
    # the client at 90 % of its core: the step says nothing about the server
    _scripted(monkeypatch, [Measured((3.0, 0.3, 0), 0.1), Measured((80.0, 0.5, 0), 0.9)])
    busy = await saturation._climb(
        "x", ServerProcess.__new__(ServerProcess), lambda n: [], (100, 200), 5.0, 1.0, deadline=math.inf
    )
    assert (busy.held, busy.stopped_by, busy.decided, busy.shown()) == (100, "client", False, "≥ 100")
