"""The simulator's floods: ``seq`` made in bulk gives exactly the bytes it gave line by line."""

from __future__ import annotations

import random

import pytest

from simulator.floods import SeqFlood, seq_size


def _line_by_line(first: int, last: int, max_bytes: int) -> list[bytes]:
    """The chunks of the per-line generator this module had before (the reference)."""
    chunks = []
    n = first
    while n <= last:
        parts: list[bytes] = []
        size = 0
        while n <= last and size < max_bytes:
            line = b"%d\r\n" % n
            parts.append(line)
            size += len(line)
            n += 1
        chunks.append(b"".join(parts))
    return chunks


def _bulk(first: int, last: int, max_bytes: int) -> list[bytes]:
    flood = SeqFlood(first, last)
    chunks = []
    while not flood.finished:
        chunks.append(flood.produce(max_bytes))
    return chunks


@pytest.mark.parametrize(
    ("first", "last", "max_bytes"),
    [
        (1, 100_000, 64 * 1024),  # the capacity scenario's `seq 100000`
        (1, 10, 64 * 1024),
        (5, 5, 1),
        (-2_345, 1_234, 4096),  # signs, and widths growing then shrinking
        (-1_200_000, -998_000, 64 * 1024),
        (999_990, 1_002_500, 777),  # a width change inside a chunk and inside a block
        (9_999_000, 10_001_000, 64 * 1024),
        (123_456_789_012, 123_456_800_000, 64 * 1024),  # long prefixes
        (1_000, 1_999, 5),  # chunks smaller than a line
        (10**15 - 1_500, 10**15 + 1_500, 3_333),
    ],
)
def test_seq_chunks_are_byte_for_byte_those_of_the_line_by_line_generator(
    first: int, last: int, max_bytes: int
) -> None:
    assert _bulk(first, last, max_bytes) == _line_by_line(first, last, max_bytes)


def test_seq_matches_the_reference_on_random_ranges_and_chunk_sizes() -> None:
    rng = random.Random(13)
    for _ in range(200):
        first = rng.choice([rng.randrange(-5_000, 5_000), rng.randrange(0, 10**9), rng.randrange(-(10**7), 0)])
        last = first + rng.randrange(-3, 12_000)
        max_bytes = rng.choice([1, 7, 100, 4096, 64 * 1024, rng.randrange(1, 100_000)])
        assert _bulk(first, last, max_bytes) == _line_by_line(first, last, max_bytes), (first, last, max_bytes)


def test_seq_output_size_is_what_seq_size_says() -> None:
    for first, last in [(1, 100_000), (-999, 1_001), (7, 7), (10, 9)]:
        text = b"".join(_bulk(first, last, 64 * 1024))
        assert len(text) - text.count(b"\r") == seq_size(first, last)


def test_a_chunk_may_change_size_between_calls_as_a_console_reader_asks() -> None:
    # the reader asks for what its buffer lacks: sizes vary from call to call
    flood = SeqFlood(1, 50_000)
    reference = b"".join(_line_by_line(1, 50_000, 64 * 1024))
    sizes = [65536, 10, 3000, 1, 50_000]
    out = b""
    i = 0
    while not flood.finished:
        out += flood.produce(sizes[i % len(sizes)])
        i += 1
    assert out == reference


def test_max_bytes_zero_produces_nothing_and_does_not_advance() -> None:
    flood = SeqFlood(1, 3)
    assert flood.produce(0) == b""
    assert not flood.finished
    assert flood.span == (1, 3)
