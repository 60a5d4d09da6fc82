"""The simulator stays sans-I/O: importing it pulls in no event loop or hypervisor."""

from __future__ import annotations

import subprocess
import sys


def test_simulator_imports_no_asyncio_tornado_or_libvirt() -> None:
    code = (
        "import sys, simulator, simulator.engine, simulator.machine, simulator.console, "
        "simulator.shell, simulator.metrics, simulator.bootlog, simulator.fleet\n"
        "print(sorted(m for m in ('asyncio', 'tornado', 'libvirt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
