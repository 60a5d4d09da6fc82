"""Dense console output is escaped by ujson (the fast extra): the same characters as
the stdlib's escaper, so a console message is byte for byte what it was."""

from __future__ import annotations

import codecs
import sys
from json.encoder import encode_basestring
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from vmws import protocol

NOW = 1684845296.123


def test_the_fast_extra_is_in_use() -> None:
    # The test extra installs ujson: the rest of this file then checks the path vmws runs.
    assert protocol.escape_dense is protocol._escape_ujson


def test_every_code_point_is_escaped_as_the_stdlib_does() -> None:
    mismatched = [
        cp
        for cp in range(sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF and protocol._escape_ujson(chr(cp)) != encode_basestring(chr(cp))
    ]
    assert mismatched == []


def test_a_lone_surrogate_goes_to_the_stdlib() -> None:
    text = "y\r\n" * 400 + "\ud800" + "\n" * 400
    assert protocol._escape_ujson(text) == encode_basestring(text)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# Bytes a guest might print: mostly dense lines, with quotes, backslashes, every
# control character, DEL, multi-byte UTF-8 and invalid bytes mixed in.
_pieces = st.sampled_from(
    [b"y\r\n", b"12345\r\n", b"\n", b"\r", b"\t", b'"', b"\\", b"/", b"\x1b[31m", b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac"]
    + [b"\xf0\x9f\x98\x80", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]
    + [bytes([c]) for c in range(32)]
)
_guest_bytes = st.lists(_pieces, min_size=0, max_size=3000).map(b"".join) | st.binary(max_size=4096)


@settings(max_examples=150, deadline=None)
@given(data=_guest_bytes, cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=8))
def test_console_messages_equal_the_stdlib_escapers(data: bytes, cuts: list[int]) -> None:
    """Read in any pieces (multi-byte characters split across reads, invalid bytes), the
    decoded text makes the same message whichever escaper runs, dense or not."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in _chunks(data, cuts):
        text = decoder.decode(chunk)
        assert protocol._escape_ujson(text) == encode_basestring(text)
        message = protocol.console_message(text, NOW, offset=len(data), epoch="0123456789abcdef")
        plain = protocol.encode(
            "console", {"content": text, "eof": False, "offset": len(data), "epoch": "0123456789abcdef"}, NOW
        )
        assert orjson.loads(message) == orjson.loads(plain)
        # The same text made dense (a KiB of newlines first): byte for byte the stdlib's message.
        dense = "\n" * 1024 + text
        fast = protocol.console_message(dense, NOW, offset=len(data), epoch="0123456789abcdef")
        with mock.patch.object(protocol, "escape_dense", encode_basestring):
            assert protocol.console_message(dense, NOW, offset=len(data), epoch="0123456789abcdef") == fast


@pytest.mark.parametrize(
    "content",
    [
        "y\r\n" * 21845,
        "".join(f"{i}\r\n" for i in range(100_000, 120_000)),
        'y\r\n"\\/\x00\x1b\x7f é€😀\ufffd\n' * 3000,
    ],
    ids=["yes", "seq", "mixed"],
)
def test_a_dense_message_is_byte_for_byte_the_stdlib_ones(content: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = protocol.console_message(content, NOW, offset=123_456_789, epoch="0123456789abcdef")
    monkeypatch.setattr(protocol, "escape_dense", encode_basestring)
    assert protocol.console_message(content, NOW, offset=123_456_789, epoch="0123456789abcdef") == fast
