"""How ``vmws serve`` runs: which asyncio event loop, and the garbage collector's settings.

Tornado runs on any asyncio loop. uvloop (``pip install 'vmws[fast]'``) spends less
CPU per socket event than the stdlib loop; ``docs/performance.md`` has both measured
on every benchmark. The default is uvloop when it can be imported, else asyncio.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LOOPS", "default_loop", "run", "tune_gc", "GC_THRESHOLDS"]

LOOPS = ("asyncio", "uvloop")
T = TypeVar("T")

# The young generation is collected after this many allocations net of frees
# (Python's default is 700). A server that allocates a few objects per message and
# frees them at once gains nothing from collecting that often; a full collection
# waits for 10 × 10 young ones as before, so it comes 70× rarer.
GC_THRESHOLDS = (50_000, 10, 10)


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def default_loop() -> str:
    return "uvloop" if uvloop_available() else "asyncio"


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` to completion on a new event loop of the kind named."""
    if loop == "asyncio":
        return asyncio.run(main)
    if loop != "uvloop":
        main.close()
        raise ValueError(f"unknown event loop {loop!r}: choose one of {', '.join(LOOPS)}")
    try:
        import uvloop
    except ImportError:
        main.close()  # never awaited: close it so Python does not warn about it
        raise ValueError("--loop uvloop needs uvloop: pip install 'vmws[fast]' (or use --loop asyncio)") from None
    result: T = uvloop.run(main)
    return result


def tune_gc() -> int:
    """Called once start-up is done: what exists now (code, the fleet, the app) lives as
    long as the process, so it is moved out of the collector's sight (``gc.freeze``) and
    full collections no longer walk it; the young generation is collected less often.
    Returns the number of objects frozen."""
    gc.collect()  # start-up garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return gc.get_freeze_count()
