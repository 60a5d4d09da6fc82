"""vmws.loops: the event loop ``vmws serve`` runs on, and the collector's settings."""

from __future__ import annotations

import asyncio
import builtins
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from vmws import loops


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_run_uses_the_loop_named() -> None:
    assert loops.run(_loop_type(), "uvloop") is uvloop.Loop
    assert not issubclass(loops.run(_loop_type(), "asyncio"), uvloop.Loop)


def test_default_is_uvloop_when_it_can_be_imported() -> None:
    assert loops.default_loop() == "uvloop"


def test_uvloop_asked_for_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    with pytest.raises(ValueError, match=r"pip install 'vmws\[fast\]'"):
        loops.run(_loop_type(), "uvloop")


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loops.run(_loop_type(), "trio")


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold(restored_gc: None) -> None:
    kept = [object() for _ in range(1000)]
    frozen = loops.tune_gc()
    assert frozen == gc.get_freeze_count() >= 1000
    assert gc.get_threshold() == loops.GC_THRESHOLDS
    assert gc.get_threshold()[0] > 700  # collected less often than Python's default
    del kept
