"""``VMWS_BENCH_SCREEN_PORT=PORT python -m loadtests.bench.screen_gateway SERVE-ARGS``:
``vmws serve SERVE-ARGS`` on the simulator, except that a VM's screen is the RFB server
listening on loopback port PORT (``loadtests.bench.screen_host``), reached over TCP as
vmws reaches a QEMU guest's VNC server.

The screen relay benchmark runs it so that vmws relays the same RFB server, in its own
process, as websockify does. The VMs, their status and everything else are the
simulator's in this process (run from the same scenario file as the screen host, so
the names agree). Bench-only: ``--backend`` takes the names registered in
``vmws.backends.BACKENDS``, and this module adds one (``BACKEND``) to that map in its
own process, so ``vmws serve`` gains no flag for it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Self

import vmws.cli
from vmws.backend import check_screen_status
from vmws.backends import BACKENDS
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config
from vmws.errors import NoScreen

__all__ = ["BACKEND", "PORT_ENV", "ExternalScreenBackend", "main"]

BACKEND = "sim-external-screen"
PORT_ENV = "VMWS_BENCH_SCREEN_PORT"


class ExternalScreenBackend(SimulatorBackend):
    """The simulator, with each VM's screen opened as a TCP connection to ``screen_port``."""

    screen_port = 0

    @classmethod
    def from_config(cls, config: Config) -> Self:
        backend = super().from_config(config)
        raw = os.environ.get(PORT_ENV, "")
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ValueError(f"{PORT_ENV} must be the screen host's TCP port, got {raw!r}")
        backend.screen_port = int(raw)
        return backend

    async def open_screen(self, name: str) -> socket.socket:
        check_screen_status(self.simulator.info(name))  # VMNotFound, then VMNotRunning
        sock = socket.socket()
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.screen_port))
        except OSError as exc:
            sock.close()
            raise NoScreen(f"the screen host on port {self.screen_port} cannot be reached: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock


def main(argv: list[str] | None = None) -> int:
    BACKENDS[BACKEND] = f"{ExternalScreenBackend.__module__}:{ExternalScreenBackend.__name__}"
    args = sys.argv[1:] if argv is None else argv
    return vmws.cli.main(["serve", "--backend", BACKEND, *args])


if __name__ == "__main__":
    sys.exit(main())
