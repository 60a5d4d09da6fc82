"""The backend contract, run against the simulator (sped up 20× on the real loop clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.contract.suite import BackendContract, ContractTimeouts
from vmws.backends.simulator import SimulatorBackend


class TestSimulatorContract(BackendContract):
    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[SimulatorBackend]:
        backend = SimulatorBackend(seed=7, speed=20.0)
        await backend.start()
        yield backend
        await backend.close()

    @pytest.fixture
    def running_vm(self) -> str:
        return "my-vm"

    @pytest.fixture
    def stopped_vm(self) -> str:
        return "db-1"

    @pytest.fixture
    def error_vm(self) -> str | None:
        return "legacy-1"

    @pytest.fixture
    def timeouts(self) -> ContractTimeouts:
        return ContractTimeouts(action=5.0, boot=5.0, console=5.0)
