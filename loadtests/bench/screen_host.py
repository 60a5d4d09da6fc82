"""``python -m loadtests.bench.screen_host --scenario FILE --vm NAME --port-file FILE``:
the simulator alone (no vmws), whose VM ``NAME`` serves its screen's RFB on a loopback
TCP port, written to the port file once listening.

The screen relay benchmark (``loadtests.bench.screen_relay``) points both relays at
that port: websockify directly, vmws through ``loadtests.bench.screen_gateway``. So
the RFB server, which takes most of the CPU, is a process of its own as a QEMU guest's
VNC server is, and neither relay shares an event loop with it. Each accepted TCP
connection is one viewer of the VM's display (``Display.serve``), as ``open_screen``
serves one end of a socket pair. The loop is the one ``vmws serve`` picks by default
(uvloop when importable) and the collector is tuned as there, so the RFB server runs
as fast as it did inside vmws. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from pathlib import Path

from simulator.clock import LoopClock
from simulator.engine import Simulator
from simulator.scenario import load_scenario
from vmws.loops import default_loop, run, tune_gc

__all__ = ["main", "serve_screen"]

_BACKLOG = 16


def serve_screen(sim: Simulator, vm: str) -> socket.socket:
    """Serve ``vm``'s screen to every TCP connection to the listener returned (loopback,
    a free port), on the simulator's event loop."""
    sim.open_screen(vm).close()  # the VM's display, with tty1's login, as a first viewer makes it
    display = sim.machine(vm).screen
    reactor = sim.reactor
    if display is None or reactor is None:
        raise RuntimeError(f"VM {vm!r} has no screen to serve")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(_BACKLOG)
    listener.setblocking(False)

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        display.serve(conn, reactor)

    reactor.add_reader(listener.fileno(), accept)
    return listener


async def _serve(scenario: Path, vm: str, port_file: Path) -> int:
    loop = asyncio.get_running_loop()
    sim = Simulator(LoopClock(loop), load_scenario(scenario))
    listener = serve_screen(sim, vm)
    tune_gc()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port_file.write_text(str(listener.getsockname()[1]), encoding="ascii")
    try:
        await stop.wait()
    finally:
        loop.remove_reader(listener.fileno())
        listener.close()
        sim.halt()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench.screen_host",
        description="Serve a simulated VM's screen (RFB) on a loopback TCP port.",
    )
    parser.add_argument("--scenario", required=True, type=Path, help="the fleet's scenario file")
    parser.add_argument("--vm", required=True, help="the VM whose screen is served")
    parser.add_argument("--port-file", required=True, type=Path, help="where the TCP port is written once listening")
    args = parser.parse_args(argv)
    return run(_serve(args.scenario, args.vm, args.port_file), default_loop())


if __name__ == "__main__":
    sys.exit(main())
