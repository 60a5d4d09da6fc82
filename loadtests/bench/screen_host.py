"""``python -m loadtests.bench.screen_host --vm NAME --port-file FILE -- SERVE-ARGS``:
``vmws serve SERVE-ARGS`` on the simulator, whose VM ``NAME`` also serves its screen's
RFB on a loopback TCP port (written to FILE once listening).

The screen relay benchmark (``loadtests.bench.screen_relay``) points websockify at that
port and a viewer at vmws's ``/ws/vms/NAME/screen``: both relay the same RFB server,
in the same process, so the figures compare the relays. Each accepted TCP connection
is served by the VM's display directly (a ``SocketLink`` on the accepted socket, as
``Display.open`` makes one on a socket pair), with no extra hop for websockify.
Bench-only: it reaches into the simulator's display, which has no TCP listener of its own.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

import vmws.cli
from simulator.screen.link import SocketLink
from vmws.backends.simulator import SimulatorBackend

__all__ = ["main"]

_backends: list[SimulatorBackend] = []


def _listen(vm: str, port_file: Path) -> None:
    """Serve ``vm``'s screen on a loopback TCP port (on the running loop, the simulator's reactor)."""
    sim = _backends[-1].simulator
    sim.open_screen(vm).close()  # the VM's display, with tty1's login, as a first viewer makes it
    display = sim._machine(vm)._display  # noqa: SLF001 (bench-only: see the module's docstring)
    reactor = sim.reactor
    assert display is not None and reactor is not None
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = SocketLink(conn, reactor, display._session, display._closed)  # noqa: SLF001
        display._links.append(link)  # noqa: SLF001

    reactor.add_reader(listener.fileno(), accept)
    port_file.write_text(str(listener.getsockname()[1]), encoding="ascii")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    split = args.index("--") if "--" in args else len(args)
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.screen_host", description=__doc__.split("\n")[0])
    parser.add_argument("--vm", required=True)
    parser.add_argument("--port-file", required=True, type=Path)
    ours = parser.parse_args(args[:split])

    made = SimulatorBackend.__init__

    def remember(self: SimulatorBackend, *a: Any, **k: Any) -> None:
        made(self, *a, **k)
        _backends.append(self)

    SimulatorBackend.__init__ = remember  # type: ignore[method-assign]
    tune_gc = getattr(vmws.cli, "tune_gc")  # noqa: B009 (what vmws serve calls once listening)

    def listening() -> int:  # vmws serve calls it once, on its loop, once it listens
        _listen(ours.vm, ours.port_file)
        return int(tune_gc())

    setattr(vmws.cli, "tune_gc", listening)  # noqa: B010
    return vmws.cli.main(["serve", *args[split + 1 :]])


if __name__ == "__main__":
    sys.exit(main())
