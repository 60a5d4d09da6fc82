"""The fake shell behind the console's prompt: commands, a tiny file tree, floods.

Pure functions of a ``ShellContext`` (who, where, what time): the console module owns
the line discipline and login, this one only answers a finished command line. Output
uses ``\\n``; the console turns it into the tty's ``\\r\\n``. Commands that produce
volume (``yes``, ``seq``) return a ``Flood`` that is drained lazily, chunk by chunk,
as the console's reader consumes — like a serial line that blocks the writer — so a
flood never grows memory.
"""

from __future__ import annotations

import posixpath
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from simulator.fleet import Personality

__all__ = ["ShellContext", "CommandResult", "Flood", "YesFlood", "SeqFlood", "run_command", "home_dir"]

_ROOT_DIRS = ("bin", "boot", "dev", "etc", "home", "lib", "proc", "root", "sys", "tmp", "usr", "var")


@dataclass(frozen=True, slots=True)
class ShellContext:
    hostname: str
    personality: Personality
    cwd: str
    now: float
    uptime: float


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command line did: text to print, a flood to drain, a new cwd, a logout."""

    output: str = ""
    flood: Flood | None = None
    cwd: str | None = None
    logout: bool = False


class Flood(ABC):
    """Output produced on demand, about ``max_bytes`` at a time, until ``finished``."""

    finished: bool = False

    @abstractmethod
    def produce(self, max_bytes: int) -> bytes: ...


class YesFlood(Flood):
    """``yes [WORD...]``: the same line forever, until Ctrl-C."""

    def __init__(self, text: str) -> None:
        self._line = (text + "\r\n").encode()

    def produce(self, max_bytes: int) -> bytes:
        return self._line * max(1, max_bytes // len(self._line))


class SeqFlood(Flood):
    """``seq [FIRST] LAST``: one integer per line."""

    def __init__(self, first: int, last: int) -> None:
        self._next = first
        self._last = last

    def produce(self, max_bytes: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._next <= self._last and size < max_bytes:
            line = b"%d\r\n" % self._next
            parts.append(line)
            size += len(line)
            self._next += 1
        self.finished = self._next > self._last
        return b"".join(parts)


def home_dir(personality: Personality) -> str:
    return "/root" if personality.username == "root" else f"/home/{personality.username}"


def _files(ctx: ShellContext) -> dict[str, str]:
    p = ctx.personality
    pretty = p.os_name
    version = pretty.removeprefix("Ubuntu ").removesuffix(" LTS")
    return {
        "/etc/hostname": f"{ctx.hostname}\n",
        "/etc/issue": f"{pretty} \\n \\l\n\n",
        "/etc/os-release": (
            f'PRETTY_NAME="{pretty}"\n'
            'NAME="Ubuntu"\n'
            f'VERSION_ID="{version[:5]}"\n'
            f'VERSION="{version} (Jammy Jellyfish)"\n'
            "VERSION_CODENAME=jammy\n"
            "ID=ubuntu\n"
            "ID_LIKE=debian\n"
            'HOME_URL="https://www.ubuntu.com/"\n'
        ),
        f"{home_dir(p)}/notes.txt": (
            f"This is {ctx.hostname}, a simulated VM served by vmws.\n"
            "Try: hostname, uname -a, uptime, ls /etc, cat /etc/os-release, seq 10, yes\n"
        ),
    }


def _dirs(files: dict[str, str]) -> set[str]:
    dirs = {"/"} | {f"/{d}" for d in _ROOT_DIRS}
    for path in files:
        parent = posixpath.dirname(path)
        while parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return dirs


def _resolve(ctx: ShellContext, path: str) -> str:
    if path == "~" or path.startswith("~/"):
        path = home_dir(ctx.personality) + path[1:]
    return posixpath.normpath(posixpath.join(ctx.cwd, path))


def _ls(ctx: ShellContext, args: list[str]) -> str:
    files = _files(ctx)
    dirs = _dirs(files)
    targets = [a for a in args if not a.startswith("-")] or ["."]
    out: list[str] = []
    for target in targets:
        path = _resolve(ctx, target)
        if path in files:
            out.append(target)
        elif path in dirs:
            prefix = path.rstrip("/") + "/"
            children = sorted(
                {p[len(prefix):].split("/", 1)[0] for p in (*files, *dirs) if p.startswith(prefix) and p != path}
            )
            if len(targets) > 1:
                out.append(f"{target}:")
            if children:
                out.append("  ".join(children))
        else:
            out.append(f"ls: cannot access '{target}': No such file or directory")
    return "".join(line + "\n" for line in out)


def _cat(ctx: ShellContext, args: list[str]) -> str:
    files = _files(ctx)
    dirs = _dirs(files)
    out: list[str] = []
    for target in args:
        path = _resolve(ctx, target)
        if path in files:
            out.append(files[path])
        elif path in dirs:
            out.append(f"cat: {target}: Is a directory\n")
        else:
            out.append(f"cat: {target}: No such file or directory\n")
    return "".join(out)


def _uptime(ctx: ShellContext) -> str:
    clock = time.strftime("%H:%M:%S", time.gmtime(ctx.now))
    minutes = int(ctx.uptime // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    span = f"{hours}:{mins:02d}" if hours else f"{mins} min"
    if days:
        span = f"{days} day{'s' if days != 1 else ''}, {span}"
    return f" {clock} up {span},  1 user,  load average: 0.08, 0.03, 0.01\n"


def _seq(args: list[str]) -> CommandResult:
    if not 1 <= len(args) <= 2:
        return CommandResult("seq: missing operand\nTry 'seq --help' for more information.\n")
    numbers: list[int] = []
    for arg in args:
        try:
            numbers.append(int(arg))
        except ValueError:
            return CommandResult(
                f"seq: invalid floating point argument: '{arg}'\nTry 'seq --help' for more information.\n"
            )
    first, last = (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])
    return CommandResult(flood=SeqFlood(first, last))


def _cd(ctx: ShellContext, args: list[str]) -> CommandResult:
    target = args[0] if args else "~"
    path = _resolve(ctx, target)
    if path in _dirs(_files(ctx)):
        return CommandResult(cwd=path)
    return CommandResult(f"-bash: cd: {target}: No such file or directory\n")


def run_command(line: str, ctx: ShellContext) -> CommandResult:
    """Run one command line as the logged-in user would see it answered."""
    try:
        words = shlex.split(line)
    except ValueError:
        # an unterminated quote: bash would wait for more input; answering at once
        # keeps the console simple and is what a user pressing Ctrl-C would reach
        words = line.split()
    if not words:
        return CommandResult()
    cmd, args = words[0], words[1:]
    p = ctx.personality
    if cmd == "echo":
        return CommandResult(" ".join(args) + "\n")
    if cmd == "hostname":
        return CommandResult(ctx.hostname + "\n")
    if cmd == "whoami":
        return CommandResult(p.username + "\n")
    if cmd == "pwd":
        return CommandResult(ctx.cwd + "\n")
    if cmd == "cd":
        return _cd(ctx, args)
    if cmd == "uname":
        if "-a" in args:
            return CommandResult(
                f"Linux {ctx.hostname} {p.kernel} {p.kernel_build} x86_64 x86_64 x86_64 GNU/Linux\n"
            )
        return CommandResult((p.kernel if "-r" in args else "Linux") + "\n")
    if cmd == "uptime":
        return CommandResult(_uptime(ctx))
    if cmd == "ls":
        return CommandResult(_ls(ctx, args))
    if cmd == "cat":
        return CommandResult(_cat(ctx, args))
    if cmd in ("exit", "logout"):
        return CommandResult(logout=True)
    if cmd == "seq":
        return _seq(args)
    if cmd == "yes":
        return CommandResult(flood=YesFlood(" ".join(args) if args else "y"))
    return CommandResult(f"{cmd}: command not found\n")
