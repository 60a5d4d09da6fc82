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


def test_each_chunk_keeps_the_time_it_arrived() -> None:
    sb = Scrollback(limit=10)
    sb.append(b"abc", 100.0)
    sb.append(b"de", 100.001)  # within 5 ms of the previous mark: shares it
    sb.append(b"fgh", 101.0)
    assert sb.timed_chunks() == [(100.0, b"abcde"), (101.0, b"fgh")]
    sb.append(b"ijklmn", 102.5)  # trims "abcd": the first held chunk is cut, not lost
    assert sb.timed_chunks() == [(100.0, b"e"), (101.0, b"fgh"), (102.5, b"ijklmn")]
    sb.append(b"0123456789", 103.0)  # every older chunk trimmed away
    assert sb.timed_chunks() == [(103.0, b"0123456789")]


def test_marks_stay_bounded_when_a_guest_writes_a_byte_at_a_time() -> None:
    from vmws.scrollback import MAX_MARKS

    sb = Scrollback(limit=1 << 20)
    for n in range(3 * MAX_MARKS):
        sb.append(b"x", float(n))
    chunks = sb.timed_chunks()
    assert len(chunks) == MAX_MARKS
    assert chunks[0][0] == 0.0 and chunks[-1] == (float(3 * MAX_MARKS - 1), b"x")
    assert b"".join(data for _, data in chunks) == b"x" * (3 * MAX_MARKS)  # no byte lost


def test_untimed_appends_have_no_chunks() -> None:
    sb = Scrollback(limit=10)
    sb.append(b"abc")
    assert sb.timed_chunks() == []
