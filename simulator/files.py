"""The fake file tree a guest shows: the personality's files, a few made per VM (its
hostname, ``/etc/passwd``, each user's ``notes.txt``), the generated system log, and
what the current login session wrote (its overlay).

Built when a command needs it, from values that already exist, so an idle VM holds no
tree at all. Permissions are the few a user notices: ``/root`` and ``/etc/shadow``
are root's; an ordinary user writes only under their home and ``/tmp``.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from simulator.fleet import Init, Personality, User

__all__ = ["Kind", "OverlayFile", "FileTree", "log_path", "ROOT_DIRS"]

ROOT_DIRS = ("bin", "boot", "dev", "etc", "home", "lib", "opt", "proc", "root", "run", "sys", "tmp", "usr", "var")
_EXTRA_DIRS = ("/var/log", "/usr/bin", "/usr/lib", "/dev/null")


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    LOG = "log"  # the generated system log: too big to hold, produced as read
    DEVICE = "device"  # /dev/null


@dataclass(frozen=True, slots=True)
class OverlayFile:
    """A file written in this session: its text, or only its size (``dd`` zeros,
    output too big to keep), or the ``seq`` range it holds (regenerated when read)."""

    size: int
    text: str | None = None
    seq: tuple[int, int] | None = None


def log_path(personality: Personality) -> str:
    return "/var/log/syslog" if personality.init is Init.SYSTEMD else "/var/log/messages"


def _passwd(users: tuple[User, ...]) -> str:
    lines = ["root:x:0:0:root:/root:/bin/bash"]
    uid = 1000
    for user in users:
        if user.name != "root":
            lines.append(f"{user.name}:x:{uid}:{uid}:{user.name}:{user.home}:/bin/bash")
            uid += 1
    return "".join(line + "\n" for line in lines)


class FileTree:
    def __init__(self, personality: Personality, hostname: str, overlay: Mapping[str, OverlayFile]) -> None:
        self.personality = personality
        files: dict[str, str] = dict(personality.files)
        files["/etc/hostname"] = hostname + "\n"
        files["/etc/hosts"] = f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n"
        files["/etc/passwd"] = _passwd(personality.users)
        files["/etc/shadow"] = "".join(
            f"{u}:$6$rounds=4096$simulated$:19800:0:99999:7:::\n"
            for u in ("root", *(u.name for u in personality.users if u.name != "root"))
        )
        for user in personality.users:
            files[f"{user.home}/notes.txt"] = (
                f"This is {hostname}, a simulated VM served by vmws.\n"
                "Try: hostname, uname -a, uptime, ls /etc, cat /etc/os-release, sudo -i, seq 10, yes, dmesg,\n"
                f"cat {log_path(personality)}, echo hi > /tmp/x, dd if=/dev/zero of=/tmp/z bs=1M count=100\n"
            )
        self._files = files
        self._overlay = overlay
        self._log = log_path(personality)
        dirs = {"/"} | {f"/{d}" for d in ROOT_DIRS} | set(_EXTRA_DIRS[:-1])
        for path in (*files, *overlay, self._log):
            parent = posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        self._dirs = dirs

    # Queries

    def kind(self, path: str) -> Kind | None:
        if path in self._overlay or path in self._files:
            return Kind.FILE
        if path == self._log:
            return Kind.LOG
        if path == "/dev/null":
            return Kind.DEVICE
        if path in self._dirs:
            return Kind.DIR
        return None

    def text(self, path: str) -> str | None:
        if path in self._overlay:
            return self._overlay[path].text
        return self._files.get(path)

    def overlay(self, path: str) -> OverlayFile | None:
        return self._overlay.get(path)

    def size(self, path: str) -> int:
        if path in self._overlay:
            return self._overlay[path].size
        return len(self._files.get(path, "").encode())

    def children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {
            p[len(prefix) :].split("/", 1)[0]
            for p in (*self._files, *self._overlay, *self._dirs, self._log, "/dev/null")
            if p.startswith(prefix) and p != path
        }
        return sorted(names)

    @staticmethod
    def readable(path: str, user: User) -> bool:
        if user.name == "root":
            return True
        return not (path == "/root" or path.startswith("/root/") or path == "/etc/shadow")

    def writable(self, path: str, user: User) -> bool:
        parent = posixpath.dirname(path)
        if self.kind(parent) is not Kind.DIR or self.kind(path) in (Kind.DIR, Kind.LOG):
            return False
        if user.name == "root":
            return True
        return path.startswith(user.home + "/") or path.startswith("/tmp/")
