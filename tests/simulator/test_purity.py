"""The simulator stays sans-I/O: importing it pulls in no event loop or hypervisor.

Only the benchmark (``simulator/bench.py``), which drives the async backend and a
server process, may; ``python -m simulator`` imports it only for ``bench``.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import simulator

ALLOWED = {"simulator.bench"}


def test_simulator_imports_no_asyncio_tornado_or_libvirt() -> None:
    modules = sorted(f"simulator.{m.name}" for m in pkgutil.iter_modules(simulator.__path__))
    pure = [m for m in modules if m not in ALLOWED]
    assert "simulator.engine" in pure and "simulator.__main__" in pure and len(pure) >= 15
    code = (
        f"import sys, {', '.join(pure)}\n"
        "print(sorted(m for m in ('asyncio', 'tornado', 'libvirt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
