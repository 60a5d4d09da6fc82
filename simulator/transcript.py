"""A VM's console output collected across reboots: a reader reopened whenever the VM
is running again. Used by ``python -m simulator run --console`` and by the tests that
compare transcripts byte for byte."""

from __future__ import annotations

from simulator.engine import Simulator
from simulator.taps import ConsoleTap
from vmws.backend import VMInfo, VMStatus
from vmws.errors import VMNotRunning

__all__ = ["Transcript"]


class Transcript:
    """Everything ``name``'s console printed while this was attached, up to ``limit`` bytes.

    ``read`` takes at most ``reads`` chunks per call, so a flood (``yes``) that nobody
    interrupts advances a bounded amount each time instead of forever.
    """

    def __init__(self, sim: Simulator, name: str, *, limit: int = 1 << 20, reads: int = 4) -> None:
        self.sim = sim
        self.name = name
        self.data = bytearray()
        self._limit = limit
        self._reads = reads
        self._tap: ConsoleTap | None = None
        self.open()
        sim.subscribe(self._status)

    def _status(self, info: VMInfo) -> None:
        if info.name == self.name and info.status is VMStatus.RUNNING:
            self.read()  # what the old reader still held
            self.open()

    def open(self) -> None:
        if self._tap is None or self._tap.eof:
            try:
                self._tap = self.sim.open_console(self.name, lambda: None)
            except VMNotRunning:
                self._tap = None  # not running now; opened again when it is

    def read(self) -> None:
        if self._tap is None:
            return
        for _ in range(self._reads):
            chunk = self._tap.read()
            if not chunk:
                break
            self.data += chunk[: max(0, self._limit - len(self.data))]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace").replace("\r\n", "\n")
