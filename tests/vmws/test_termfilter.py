from __future__ import annotations

import pytest

from vmws.termfilter import TerminalFilter


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (["plain \x1b[31mred\x1b[0m"], "plain \x1b[31mred\x1b[0m"),
        (["a\x1b]0;pwned title\x07b"], "ab"),
        (["a\x1b]52;c;ZXZpbA==\x1b\\b"], "ab"),
        (["a\x1bPq#0;2;0;0;0\x1b\\b"], "ab"),
        (["a\x9d0;title\x9cb"], "ab"),
        (["a\x1b", "]0;split", " title\x07b"], "ab"),
        (["a\x1b]0;x\x1b", "\\b"], "ab"),
        (["x\x1b", "[1mbold"], "x\x1b[1mbold"),
    ],
)
def test_string_sequences_removed_even_when_split(chunks: list[str], expected: str) -> None:
    f = TerminalFilter()
    assert "".join(f.feed(c) for c in chunks) == expected
