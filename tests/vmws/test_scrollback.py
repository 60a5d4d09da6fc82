from __future__ import annotations

from vmws.scrollback import Scrollback


def test_keeps_newest_bytes_and_counts_offsets() -> None:
    sb = Scrollback(limit=10)
    sb.append(b"0123456789")
    sb.append(b"abcde")
    assert (sb.start, sb.end) == (5, 15)
    assert sb.since(0) == (5, b"56789abcde")
    assert sb.since(12) == (12, b"cde")
    assert sb.since(15) == (15, b"")
    assert sb.since(7, until=9) == (7, b"78")


def test_trimmed_start_moves_past_a_split_character() -> None:
    sb = Scrollback(limit=4)
    sb.append("aé€".encode())  # 1 + 2 + 3 bytes: keeps the last 4 = b"\xa9" + "€"
    first, data = sb.since(0)
    assert data.decode() == "€" and first == 3
