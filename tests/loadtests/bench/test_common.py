from __future__ import annotations

import math
import time

from loadtests.bench.common import ClientMeter, Measured, Outcome, client_peak, paired_ratio, percentile, vmws_loops
from loadtests.bench.seqflood import _Offsets
from vmws.loops import default_loop
from vmws.protocol import console_message


def test_outcome_line_says_ok_or_miss_against_the_target() -> None:
    assert Outcome("console_flood", 1.234, 1.0, higher=True).line() == "console_flood ratio=1.23 target=1 OK"
    assert Outcome("idle_10k", 1.6, 1.5, higher=False).line() == "idle_10k ratio=1.60 target=1.5 MISS"
    # a ratio inside its target still misses when a side condition fails
    held = Outcome("broadcast_1k", 0.9, 2.0, higher=False, extra_ok=False, note="p99 60 ms > 50 ms")
    assert held.line() == "broadcast_1k ratio=0.90 target=2 MISS (p99 60 ms > 50 ms)"


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 99))


def test_a_round_whose_client_used_over_80_percent_is_not_counted() -> None:
    mine = [Measured((2.0,), 0.3), Measured((9.0,), 0.95), Measured((4.0,), 0.5)]
    theirs = [Measured((1.0,), 0.2), Measured((1.0,), 0.3), Measured((1.0,), 0.81)]
    ratio, kept = paired_ratio(mine, theirs)
    assert (ratio, kept) == (2.0, 1)  # the second (vmws's client) and third (baseline's) are out
    assert client_peak(mine + theirs) == 0.5


def test_an_outcome_with_no_round_counted_is_invalid_not_a_miss_or_a_pass() -> None:
    nothing = Outcome("console_flood", float("nan"), 1.0, higher=True, rounds=(0, 3))
    assert nothing.invalid and not nothing.ok
    assert nothing.line() == "console_flood ratio=nan target=1 INVALID (0/3 rounds counted)"
    some = Outcome("console_flood", 1.5, 1.0, higher=True, client_cpu=0.42, rounds=(2, 3))
    assert some.ok and not some.invalid
    assert some.line() == "console_flood ratio=1.50 target=1 OK (client CPU ≤ 42%, 2/3 rounds counted)"


def test_client_meter_reads_this_process_cpu_share() -> None:
    meter = ClientMeter()
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        pass  # busy: the share is this process's, so it is well above zero
    assert 0.0 < meter.share() <= 1.5


def test_vmws_is_measured_on_both_loops_the_default_first() -> None:
    assert vmws_loops() == (default_loop(), *(loop for loop in ("asyncio", "uvloop") if loop != default_loop()))


def test_the_seq_flood_reads_console_offsets_from_the_message_tail() -> None:
    offsets = _Offsets()
    offsets.on_message(None, console_message("1\r\n2\r\n", 0.0, offset=123456789).encode(), 0.0)  # type: ignore[arg-type]
    assert offsets.last == 123456789
    offsets.on_message(None, b'{"type":"heartbeat","data":{"seq":1}}', 0.0)  # type: ignore[arg-type]
    assert offsets.last == 123456789
