"""The VM simulator: a deterministic fleet with a fake getty/login/shell console,
scenario files, a timeline of scripted faults and lazily computed metrics.

Pure (sans-I/O): it imports no asyncio, tornado or libvirt, reads time only from the
``simulator.clock.Clock`` it is handed and randomness only from a seeded generator.
``vmws.backends.simulator.SimulatorBackend`` adapts it to the async Backend seam;
``python -m simulator`` checks and fast-forwards scenarios. See ``simulator/README.md``
and ``docs/simulator.md``.
"""

from __future__ import annotations

from simulator.engine import Simulator
from simulator.fleet import FleetSpec, VMSpec
from simulator.scenario import ScenarioError, demo_fleet, load_scenario, parse_scenario

__all__ = ["Simulator", "FleetSpec", "VMSpec", "ScenarioError", "demo_fleet", "load_scenario", "parse_scenario"]
