from __future__ import annotations

import pytest

from simulator.clock import VIRTUAL_EPOCH, VirtualClock


def test_virtual_clock_runs_timers_in_order_within_the_window() -> None:
    clock = VirtualClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(2, lambda: fired.append(("b", clock.time())))
    clock.call_later(
        1, lambda: (fired.append(("a", clock.time())), clock.call_later(0.5, lambda: fired.append(("c", clock.time()))))
    )
    cancelled = clock.call_later(1.2, lambda: fired.append(("x", clock.time())))
    cancelled.cancel()
    clock.advance(1.9)
    assert fired == [("a", VIRTUAL_EPOCH + 1), ("c", VIRTUAL_EPOCH + 1.5)]
    assert clock.time() == VIRTUAL_EPOCH + 1.9
    assert clock.next_deadline() == VIRTUAL_EPOCH + 2
    clock.advance(1)
    assert fired[-1] == ("b", VIRTUAL_EPOCH + 2)
    with pytest.raises(ValueError):
        clock.advance(-1)
