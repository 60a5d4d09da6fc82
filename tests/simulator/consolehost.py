"""A console driven by hand: the machine's side recorded, timers on a VirtualClock
(no test_ prefix: not collected). The ``host`` and ``console`` fixtures are in conftest.py."""

from __future__ import annotations

from collections.abc import Callable

from simulator.clock import VirtualClock
from simulator.console import Console
from simulator.fleet import Personality


class RecordingHost:
    """The machine's side of the console: records output, runs timers on a VirtualClock."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.output = bytearray()
        self.floods = 0
        self.written = 0

    def emit(self, data: bytes) -> None:
        self.output += data

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.clock.call_later(delay, callback)

    def now(self) -> float:
        return self.clock.time()

    def uptime(self) -> float:
        return 3 * 3600 + 5 * 60

    def flood_started(self) -> None:
        self.floods += 1

    def kernel_log(self) -> list[str]:
        return ["[    0.000000] Linux version test"]

    def disk_written(self, nbytes: int) -> None:
        self.written += nbytes

    def take(self) -> bytes:
        data = bytes(self.output)
        self.output.clear()
        return data


def make_console(host: RecordingHost, personality: Personality | None = None, hostname: str = "vm-a") -> Console:
    console = Console(hostname, personality or Personality(), host, failure_delay=1.0)
    console.show_login()
    host.take()
    return console


def logged_in(console: Console, host: RecordingHost, user: bytes = b"admin", password: bytes = b"admin") -> Console:
    console.feed(user + b"\n" + password + b"\n")
    host.take()
    return console


def run(console: Console, host: RecordingHost, line: bytes) -> bytes:
    console.feed(line + b"\r")
    return host.take()


def drain_flood(console: Console, host: RecordingHost, limit: int = 10_000) -> bytes:
    """Pump a flood until it ends (at most ``limit`` chunks) and return all output."""
    out = bytearray(host.take())
    for _ in range(limit):
        if not console.pumping:
            break
        console.pump(64 * 1024)
        out += host.take()
    return bytes(out)
