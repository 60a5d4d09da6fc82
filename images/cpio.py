"""A writer for the ``newc`` cpio format the Linux kernel unpacks as an initramfs.

Pure and deterministic: entries are written in the order given with fixed inode
numbers and mtime 0, so the same entries always give the same bytes (and the same
content hash for the image cache).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["EntryKind", "Entry", "write_newc", "read_newc"]

_TRAILER = "TRAILER!!!"


class EntryKind(enum.IntEnum):
    """File type bits of ``st_mode``."""

    DIRECTORY = 0o040000
    FILE = 0o100000
    SYMLINK = 0o120000
    CHAR_DEVICE = 0o020000


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member; ``data`` is the content (the target, for a symlink)."""

    path: str
    kind: EntryKind
    mode: int = 0o755
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(entry: Entry, ino: int, name: bytes) -> bytes:
    fields = (
        ino,
        entry.kind | (entry.mode & 0o7777),
        entry.uid,
        entry.gid,
        2 if entry.kind is EntryKind.DIRECTORY else 1,
        0,  # mtime: fixed so the archive is reproducible
        len(entry.data),
        0,
        0,
        entry.rdev_major,
        entry.rdev_minor,
        len(name),
        0,
    )
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def write_newc(entries: Iterable[Entry]) -> bytes:
    """The archive holding ``entries`` then the trailer, as bytes."""
    out = bytearray()
    for ino, entry in enumerate([*entries, Entry(_TRAILER, EntryKind.FILE, 0)], start=1):
        path = entry.path.lstrip("/")
        if not path:
            raise ValueError("an entry needs a path")
        name = path.encode() + b"\0"
        header = _header(entry, 0 if path == _TRAILER else ino, name)
        out += header + name
        out += _pad(len(header) + len(name))
        out += entry.data + _pad(len(entry.data))
    return bytes(out)


def read_newc(archive: bytes) -> list[Entry]:
    """The entries of a ``newc`` archive, trailer excluded (to inspect built images)."""
    entries: list[Entry] = []
    pos = 0
    while True:
        if archive[pos : pos + 6] != b"070701":
            raise ValueError(f"not a newc header at offset {pos}")
        fields = [int(archive[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, uid, gid, size, major, minor, namesize = (
            fields[1],
            fields[2],
            fields[3],
            fields[6],
            fields[9],
            fields[10],
            fields[11],
        )
        name_start = pos + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + _pad_len(110 + namesize)
        data = archive[data_start : data_start + size]
        pos = data_start + size + _pad_len(size)
        if name == _TRAILER:
            return entries
        entries.append(Entry(name, EntryKind(mode & 0o170000), mode & 0o7777, data, uid, gid, major, minor))


def _pad_len(length: int) -> int:
    return -length % 4
