"""The backend contract, run against the simulator (sped up 20× on the real loop clock):
the demo fleet, an Alpine fleet from a scenario, and (capabilities only) the simulator
declaring none of the optional capabilities."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from simulator.fleet import FleetSpec
from simulator.scenario import parse_scenario
from tests.contract.suite import BackendContract, CapabilityContract, ContractTimeouts
from vmws.backend import Action
from vmws.backends.simulator import SimulatorBackend
from vmws.errors import VMNotFound


class TestSimulatorContract(BackendContract):
    fleet: FleetSpec | None = None  # None: the demo fleet
    vms = ("my-vm", "db-1", "legacy-1")  # running, stopped, error
    account = ("admin", "admin")

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[SimulatorBackend]:
        backend = SimulatorBackend(seed=7, speed=20.0, fleet=self.fleet)
        await backend.start()
        yield backend
        await backend.close()

    @pytest.fixture
    def running_vm(self) -> str:
        return self.vms[0]

    @pytest.fixture
    def stopped_vm(self) -> str:
        return self.vms[1]

    @pytest.fixture
    def error_vm(self) -> str | None:
        return self.vms[2]

    @pytest.fixture
    def hung_stop_vm(self, backend: SimulatorBackend) -> str:
        # the scripted fault "hang-on-shutdown", and a stop timeout well past timeouts.action
        machine = backend.simulator.machine(self.vms[0])
        timings = dataclasses.replace(machine.spec.timings, shutdown_timeout=3600.0)
        machine.spec = dataclasses.replace(machine.spec, timings=timings)
        machine.faults.hang_shutdown = True
        return self.vms[0]

    @pytest.fixture
    def credentials(self) -> tuple[str, str]:
        return self.account

    @pytest.fixture
    def timeouts(self) -> ContractTimeouts:
        return ContractTimeouts(action=5.0, boot=5.0, console=5.0)


class TestSimulatorAlpineContract(TestSimulatorContract):
    """Another personality (OpenRC boot, root login, ``#`` prompt) keeps the contract too."""

    fleet = parse_scenario(
        '[template.alpine]\npersonality = "alpine"\n'
        '[[vm]]\nname = "alp-run"\ntemplate = "alpine"\n'
        '[[vm]]\nname = "alp-off"\ntemplate = "alpine"\nstatus = "stopped"\n'
        '[[vm]]\nname = "alp-err"\ntemplate = "alpine"\nstatus = "error"\n',
        "alpine.toml",
    )
    vms = ("alp-run", "alp-off", "alp-err")
    account = ("root", "alpine")


class LesserSimulatorBackend(SimulatorBackend):
    """The simulator declaring no optional capability, as a backend lacking them all."""

    capabilities = frozenset()


class TestSimulatorWithoutCapabilities(CapabilityContract):
    """The refusals: a backend that does not declare a capability refuses its calls
    (a backend declaring everything, as every real one here does, never gets there)."""

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[SimulatorBackend]:
        backend = LesserSimulatorBackend(seed=7, speed=20.0)
        await backend.start()
        yield backend
        await backend.close()

    @pytest.fixture
    def running_vm(self) -> str:
        return "my-vm"

    @pytest.fixture
    def stopped_vm(self) -> str:
        return "db-1"

    @pytest.mark.asyncio
    async def test_an_unknown_vm_is_still_not_found(self, backend: SimulatorBackend) -> None:
        for call in (backend.sample("ghost"), backend.open_console("ghost"), backend.perform("ghost", Action.PAUSE)):
            with pytest.raises(VMNotFound):
                await call
