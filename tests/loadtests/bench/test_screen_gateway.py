"""The screen relay benchmark's two seams: the screen host (the simulator serving one VM's
RFB on a TCP port, in its own process) and the gateway's backend that opens a VM's screen
as a TCP connection to it, over real sockets and, for the host, a real process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.bench import screen_gateway
from loadtests.bench.screen_gateway import ExternalScreenBackend
from loadtests.bench.screen_host import serve_screen
from loadtests.cluster_procs import free_port
from loadtests.fleet import vm_name, write_fleet
from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.scenario import load_scenario
from tests.rfb_client import RFBClient, StreamTransport
from tests.simulator.screenview import last_lines, picture
from vmws.config import Config
from vmws.errors import NoScreen, VMNotFound

VM = vm_name(0)


async def _gateway_backend(fleet: Path, port: int) -> ExternalScreenBackend:
    backend = ExternalScreenBackend(scenario=fleet)
    await backend.start()
    backend.screen_port = port
    return backend


@pytest.mark.asyncio
async def test_the_gateway_opens_a_vms_screen_as_a_tcp_connection_to_the_screen_host(tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", 2)
    host = Simulator(VirtualClock(), load_scenario(fleet), reactor=asyncio.get_running_loop())
    listener = serve_screen(host, VM)
    backend = await _gateway_backend(fleet, listener.getsockname()[1])
    try:
        client = await RFBClient.connect(await StreamTransport.over_socket(await backend.open_screen(VM)))
        assert (client.width, client.height, client.name) == (640, 400, VM)
        assert last_lines(await picture(client))[-1].endswith("login:")
        await client.close()
        with pytest.raises(VMNotFound):  # the gateway's own fleet decides which VMs exist
            await backend.open_screen("no-such-vm")
    finally:
        asyncio.get_running_loop().remove_reader(listener.fileno())
        listener.close()
        await backend.close()


@pytest.mark.asyncio
async def test_a_screen_host_that_is_not_listening_is_no_screen_with_its_port_named(tmp_path: Path) -> None:
    port = free_port()
    backend = await _gateway_backend(write_fleet(tmp_path / "fleet.toml", 1), port)
    try:
        with pytest.raises(NoScreen, match=f"the screen host on port {port} cannot be reached"):
            await backend.open_screen(VM)
    finally:
        await backend.close()


@pytest.mark.parametrize("raw", ["", "http", "0", "70000"])
def test_the_gateway_needs_the_screen_hosts_port_in_its_environment(
    raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(screen_gateway.PORT_ENV, raw)
    config = Config(scenario=str(write_fleet(tmp_path / "fleet.toml", 1)))
    with pytest.raises(ValueError, match=screen_gateway.PORT_ENV):
        ExternalScreenBackend.from_config(config)
    monkeypatch.setenv(screen_gateway.PORT_ENV, "5900")
    assert ExternalScreenBackend.from_config(config).screen_port == 5900


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_the_screen_host_process_serves_rfb_on_the_port_it_writes_and_stops_on_sigterm(tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", 1)
    port_file = tmp_path / "port"
    argv = [sys.executable, "-m", "loadtests.bench.screen_host", "--scenario", str(fleet), "--vm", VM]
    proc = subprocess.Popen([*argv, "--port-file", str(port_file)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text(encoding="ascii")):
            assert proc.poll() is None and time.monotonic() < deadline, "the screen host never listened"
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port_file.read_text(encoding="ascii")))
        client = await RFBClient.connect(StreamTransport(reader, writer))
        assert client.name == VM
        await client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
