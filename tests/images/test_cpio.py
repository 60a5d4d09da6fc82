"""The newc writer: round trip, padding, determinism."""

from __future__ import annotations

import pytest

from images.cpio import Entry, EntryKind, read_newc, write_newc


def test_round_trip_keeps_every_field() -> None:
    entries = [
        Entry("etc", EntryKind.DIRECTORY, 0o755),
        Entry("etc/passwd", EntryKind.FILE, 0o644, b"root:x:0:0::/root:/bin/sh\n"),
        Entry("init", EntryKind.SYMLINK, 0o777, b"/bin/busybox"),
        Entry("dev/console", EntryKind.CHAR_DEVICE, 0o600, rdev_major=5, rdev_minor=1),
        Entry("home/admin", EntryKind.DIRECTORY, 0o755, uid=1000, gid=1000),
    ]
    assert read_newc(write_newc(entries)) == entries


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 511])
def test_every_member_is_four_byte_aligned(size: int) -> None:
    archive = write_newc([Entry("f" * (size % 7 + 1), EntryKind.FILE, 0o644, b"x" * size)])
    assert len(archive) % 4 == 0
    assert read_newc(archive)[0].data == b"x" * size


def test_same_entries_same_bytes_and_ends_with_trailer() -> None:
    entries = [Entry("a", EntryKind.FILE, 0o644, b"1"), Entry("b", EntryKind.FILE, 0o755, b"22")]
    archive = write_newc(entries)
    assert archive == write_newc(list(entries))
    assert b"TRAILER!!!\0" in archive[-128:]


def test_leading_slashes_are_dropped_and_empty_paths_refused() -> None:
    assert read_newc(write_newc([Entry("/etc/x", EntryKind.FILE, 0o644, b"")]))[0].path == "etc/x"
    with pytest.raises(ValueError):
        write_newc([Entry("/", EntryKind.DIRECTORY)])
