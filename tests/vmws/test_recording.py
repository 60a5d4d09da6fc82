"""vmws/recording.py: asciinema v2 lines, filtered like ``vmws console``."""

from __future__ import annotations

import orjson

from tests.vmws.vt_reference import parse
from vmws.recording import CastRecorder, scrollback_cast


def lines(text: str) -> list[object]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_header_and_output_events_relative_to_the_first_chunk() -> None:
    header, *events = lines(scrollback_cast([(1000.5, b"hello "), (1002.0, b"world\r\n")], now=2000.0))
    assert header == {"version": 2, "width": 80, "height": 24, "timestamp": 1000, "env": {"TERM": "xterm-256color"}}
    assert events == [[0.0, "o", "hello "], [1.5, "o", "world\r\n"]]


def test_control_strings_are_dropped_even_split_across_chunks() -> None:
    chunks = [(1.0, b"a\x1b]52;c;aGk="), (2.0, b"\x07b\x1bP"), (3.0, b"q\x1b\\c\xc2\x9d0;t\x07d\x1b[?1049h")]
    _, *events = lines(scrollback_cast(chunks, now=5.0))
    shown = "".join(str(event[2]) for event in events)  # type: ignore[index]
    assert parse(shown).strings == []
    assert "a" in shown and "b" in shown and "c" in shown and "d" in shown
    assert shown.endswith("\x1b[?1049l")  # the mode the guest switched on is switched off at the end


def test_a_character_split_across_chunks_stays_whole_and_invalid_bytes_are_replaced() -> None:
    _, *events = lines(scrollback_cast([(1.0, "é".encode()[:1]), (2.0, "é".encode()[1:] + b"\xff")], now=3.0))
    assert "".join(str(e[2]) for e in events) == "é\ufffd"  # type: ignore[index]


def test_an_empty_scrollback_is_a_header_starting_now() -> None:
    (header,) = lines(scrollback_cast([], now=1234.9))
    assert header["timestamp"] == 1234  # type: ignore[index]


def test_times_never_go_backwards() -> None:
    recorder = CastRecorder(100.0)
    assert orjson.loads(recorder.output(105.0, "a"))[0] == 5.0
    assert orjson.loads(recorder.output(99.0, "b"))[0] == 5.0  # the clock stepped back
    assert recorder.output(106.0, "\x1b]0;title\x07") == ""  # nothing survives: no event
