"""The VM simulator: a deterministic fleet with a fake getty/login/shell console.

Pure (sans-I/O): it imports no asyncio, tornado or libvirt, reads time only from the
``vmws.clock.Clock`` it is handed and randomness only from a seeded generator.
``vmws.backends.simulator.SimulatorBackend`` adapts it to the async Backend seam.
See ``simulator/README.md``.
"""

from __future__ import annotations

from simulator.engine import Simulator
from simulator.fleet import FleetSpec, VMSpec, demo_fleet, load_scenario, parse_scenario

__all__ = ["Simulator", "FleetSpec", "VMSpec", "demo_fleet", "load_scenario", "parse_scenario"]
