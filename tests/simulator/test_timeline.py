"""The scenario timeline on a virtual clock: when events fire, on which VMs, how fast."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.scenario import load_scenario, parse_scenario
from simulator.transcript import Transcript
from tests.simulator.fleetrun import Run
from vmws.backend import VMStatus

FLEET = '[[vm]]\nname = "web-{01..10}"\n'


def fired(run: Run, kind: str) -> list[tuple[str, str]]:
    """(elapsed, vm) of every timeline entry of ``kind``."""
    return [(line[:12], line.split()[1]) for line in run.sim.events.text().splitlines() if f"timeline {kind} " in line]


def test_every_and_repeat() -> None:
    run = Run(
        fleet=parse_scenario(
            FLEET + '[[event]]\nat = "1m"\nevery = "5m"\nrepeat = 3\nvm = "web-01"\nevent = "network-burst"\n'
        )
    )
    run.clock.advance(3600)
    assert fired(run, "network-burst") == [
        ("00:01:00.000", "web-01"),
        ("00:06:00.000", "web-01"),
        ("00:11:00.000", "web-01"),
    ]


def test_every_without_repeat_goes_on_until_halt() -> None:
    run = Run(fleet=parse_scenario(FLEET + '[[event]]\nat = "0s"\nevery = "1m"\nvm = "web-01"\nevent = "disk-burst"\n'))
    run.clock.advance(600)
    assert len(fired(run, "disk-burst")) == 11
    run.sim.halt()
    run.clock.advance(600)
    assert len(fired(run, "disk-burst")) == 11


def test_pick_chooses_with_the_seed() -> None:
    text = FLEET + '[[event]]\nat = "10s"\nvm = "web-*"\npick = 3\nevent = "crash"\n'

    def crashed(seed: int) -> list[str]:
        run = Run(seed=seed, fleet=parse_scenario(text))
        run.clock.advance(11)
        return sorted(i.name for i in run.sim.list() if i.status is VMStatus.ERROR)

    picks = [crashed(seed) for seed in range(5)]
    assert all(len(p) == 3 for p in picks)
    assert crashed(2) == picks[2]
    assert len({tuple(p) for p in picks}) > 1


def test_actions_and_typing_from_the_timeline() -> None:
    run = Run(
        fleet=parse_scenario(
            FLEET
            + '[[event]]\nat = "5s"\nvm = "web-0[1-2]"\nevent = "stop"\n'
            + '[[event]]\nat = "6s"\nvm = "web-01"\nevent = "start"\n'  # queued behind the stop
            + '[[event]]\nat = "1s"\nvm = "web-03"\nevent = "type"\ntext = "admin\\nadmin\\nhostname\\n"\n'
        )
    )
    transcript = Transcript(run.sim, "web-03")
    run.clock.advance(30)
    transcript.read()
    assert run.sim.info("web-01").status is VMStatus.RUNNING
    assert run.sim.info("web-02").status is VMStatus.STOPPED
    assert "hostname\nweb-03\nadmin@web-03:~$ " in transcript.text()
    log = run.sim.events.text()
    assert (
        "web-01           command  stop done: stopped" in log and "web-01           command  start done: running" in log
    )


def test_a_ten_minute_timeline_takes_well_under_a_second() -> None:
    path = Path(str(resources.files("simulator").joinpath("scenarios", "chaos.toml")))
    fleet = load_scenario(path)
    assert max(e.at for e in fleet.events) >= 240
    began = time.perf_counter()
    clock = VirtualClock()
    sim = Simulator(clock, fleet, seed=7)
    transcripts = [Transcript(sim, name) for name in ("web-002", "web-003", "db-1")]
    end = clock.time() + 600
    while (deadline := clock.next_deadline()) is not None and deadline <= end:
        clock.advance(deadline - clock.time())
        for transcript in transcripts:
            transcript.read()
    elapsed = time.perf_counter() - began
    assert elapsed < 1.0, f"ten simulated minutes took {elapsed:.2f} s"
    statuses = {i.name: i.status for i in sim.list()}
    assert statuses["web-007"] is VMStatus.ERROR and statuses["web-003"] is VMStatus.STOPPED
    assert len(sim.events.entries) > 20
