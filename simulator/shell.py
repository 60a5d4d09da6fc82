"""The commands behind the prompt: pure functions of a command's words and a
``ShellContext`` (who, where, what time, which file tree).

The session (``simulator/session.py``) parses the line, handles ``sudo`` and
redirection and applies what a command did; this module only answers one command.
Output uses ``\\n``; the console turns it into the tty's ``\\r\\n``. Commands that
produce volume return a ``Flood`` that the console drains as its reader consumes.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from simulator.files import FileTree, Kind, OverlayFile
from simulator.fleet import Personality, User
from simulator.floods import (
    SYSLOG_LINES,
    ChainFlood,
    Flood,
    LinesFlood,
    SeqFlood,
    TextFlood,
    YesFlood,
    dmesg_line,
    syslog_line,
)

__all__ = ["ShellContext", "CommandResult", "run_command", "FULL_SCREEN"]

# Programs that need a full-screen terminal: refused honestly rather than faked.
FULL_SCREEN = frozenset({"top", "htop", "vi", "vim", "nano", "less", "more", "man", "tmux", "screen"})
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BIG_TEXT = 16 * 1024  # a file longer than this is printed as a flood, so ^C can stop it


@dataclass(frozen=True, slots=True)
class ShellContext:
    hostname: str
    personality: Personality
    user: User
    cwd: str
    now: float
    uptime: float
    tree: FileTree
    memory_mib: int
    vcpus: int
    kernel_log: Callable[[], list[str]]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: text to print, a flood to drain, a new cwd, an exit, a
    pause (``sleep``), files it created and bytes it wrote to disk."""

    output: str = ""
    flood: Flood | None = None
    cwd: str | None = None
    exit: bool = False
    sleep: float | None = None
    writes: tuple[tuple[str, OverlayFile], ...] = field(default=())
    disk_write: int = 0


def _resolve(ctx: ShellContext, path: str) -> str:
    if path == "~" or path.startswith("~/"):
        path = ctx.user.home + path[1:]
    return posixpath.normpath(posixpath.join(ctx.cwd, path))


def _stamp(now: float) -> str:
    t = time.gmtime(now)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}"


def _ls(ctx: ShellContext, args: list[str]) -> str:
    tree = ctx.tree
    flags = "".join(a[1:] for a in args if a.startswith("-"))
    long = "l" in flags
    targets = [a for a in args if not a.startswith("-")] or ["."]
    out: list[str] = []

    def entry(path: str, shown: str) -> str:
        if not long:
            return shown
        kind = tree.kind(path)
        owner = ctx.user.name if path.startswith(ctx.user.home + "/") or path.startswith("/tmp/") else "root"
        if kind is Kind.DIR:
            return f"drwxr-xr-x 2 {owner} {owner:<6}     4096 {_stamp(ctx.now)} {shown}"
        size = tree.size(path) if kind is Kind.FILE else SYSLOG_LINES * 80 if kind is Kind.LOG else 0
        mode, group = "-rw-r--r--", owner
        if kind is Kind.DEVICE:
            mode = "crw-rw-rw-"
        elif kind is Kind.LOG or path == "/etc/shadow":
            mode, group = "-rw-r-----", "adm" if kind is Kind.LOG else "shadow"
        return f"{mode} 1 {owner} {group:<6} {size:8d} {_stamp(ctx.now)} {shown}"

    for target in targets:
        path = _resolve(ctx, target)
        kind = tree.kind(path)
        if kind is None:
            out.append(f"ls: cannot access '{target}': No such file or directory")
        elif kind is not Kind.DIR:
            out.append(entry(path, target))
        elif not tree.readable(path, ctx.user):
            out.append(f"ls: cannot open directory '{target}': Permission denied")
        else:
            children = [c for c in tree.children(path) if "a" in flags or not c.startswith(".")]
            if len(targets) > 1:
                out.append(f"{target}:")
            if long:
                out.append(f"total {4 * len(children)}")
                out.extend(entry(posixpath.join(path, c), c) for c in children)
            elif children:
                out.append("  ".join(children))
    return "".join(line + "\n" for line in out)


def _log_flood(ctx: ShellContext, first: int = 0, last: int = SYSLOG_LINES) -> Flood:
    # the log outlives reboots: its lines run up to now, a line every 0.9 s
    return LinesFlood(partial(syslog_line, ctx.hostname, ctx.now - SYSLOG_LINES * 0.9), first, last)


def _file_flood(ctx: ShellContext, path: str) -> Flood | str:
    """The content of a readable file: text, or a flood when it is big or generated."""
    tree = ctx.tree
    if tree.kind(path) is Kind.LOG:
        return _log_flood(ctx)
    overlay = tree.overlay(path)
    if overlay is not None and overlay.seq is not None:
        return SeqFlood(*overlay.seq)
    text = tree.text(path) or ""
    if len(text) > _BIG_TEXT:
        return TextFlood(text.replace("\n", "\r\n").encode())
    return text


def _cat(ctx: ShellContext, args: list[str]) -> CommandResult:
    tree = ctx.tree
    pieces: list[Flood | str] = []
    for target in (a for a in args if a != "-"):
        path = _resolve(ctx, target)
        kind = tree.kind(path)
        if kind is None:
            pieces.append(f"cat: {target}: No such file or directory\n")
        elif kind is Kind.DIR:
            pieces.append(f"cat: {target}: Is a directory\n")
        elif not tree.readable(path, ctx.user):
            pieces.append(f"cat: {target}: Permission denied\n")
        elif kind is not Kind.DEVICE:
            pieces.append(_file_flood(ctx, path))
    if all(isinstance(p, str) for p in pieces):
        return CommandResult("".join(p for p in pieces if isinstance(p, str)))
    floods = [p if isinstance(p, Flood) else TextFlood(p.replace("\n", "\r\n").encode()) for p in pieces]
    return CommandResult(flood=ChainFlood(floods))


def _head_tail(ctx: ShellContext, cmd: str, args: list[str]) -> CommandResult:
    count = 10
    files: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-n" and i + 1 < len(args):
            arg, i = "-n" + args[i + 1], i + 1
        if arg.startswith("-n") or (arg.startswith("-") and arg[1:].isdigit()):
            number = arg[2:] if arg.startswith("-n") else arg[1:]
            if not number.isdigit():
                return CommandResult(f"{cmd}: invalid number of lines: '{number}'\n")
            count = int(number)
        else:
            files.append(arg)
        i += 1
    if len(files) != 1:
        return CommandResult(f"{cmd}: this simulated shell reads exactly one file\n")
    path = _resolve(ctx, files[0])
    kind = ctx.tree.kind(path)
    if kind is None or kind is Kind.DIR:
        why = "No such file or directory" if kind is None else "Is a directory"
        return CommandResult(f"{cmd}: cannot open '{files[0]}' for reading: {why}\n")
    if not ctx.tree.readable(path, ctx.user):
        return CommandResult(f"{cmd}: cannot open '{files[0]}' for reading: Permission denied\n")
    if kind is Kind.LOG:
        first, last = (0, count) if cmd == "head" else (SYSLOG_LINES - count, SYSLOG_LINES)
        return CommandResult(flood=_log_flood(ctx, first, min(last, SYSLOG_LINES)))
    lines = (ctx.tree.text(path) or "").splitlines(keepends=True)
    chosen = lines[:count] if cmd == "head" else lines[-count:] if count else []
    return CommandResult("".join(chosen))


def _uptime(ctx: ShellContext) -> str:
    clock = time.strftime("%H:%M:%S", time.gmtime(ctx.now))
    minutes = int(ctx.uptime // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    span = f"{hours}:{mins:02d}" if hours else f"{mins} min"
    if days:
        span = f"{days} day{'s' if days != 1 else ''}, {span}"
    return f" {clock} up {span},  1 user,  load average: 0.08, 0.03, 0.01\n"


def _date(now: float) -> str:
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC {t.tm_year}\n"
    )


def _free(ctx: ShellContext, args: list[str]) -> str:
    total = ctx.memory_mib
    used, free, cache = total * 3 // 10, total * 5 // 10, total * 2 // 10
    unit, scale = ("Mi", 1) if "-h" in args else ("", 1 if "-m" in args else 1024)
    cells = [f"{v * scale}{unit}" for v in (total, used, free, 1, cache, total - used)]
    return (
        "               total        used        free      shared  buff/cache   available\n"
        f"Mem:  {cells[0]:>14} {cells[1]:>11} {cells[2]:>11} {cells[3]:>11} {cells[4]:>11} {cells[5]:>11}\n"
        f"Swap: {'0':>14} {'0':>11} {'0':>11}\n"
    )


def _df() -> str:
    return (
        "Filesystem      Size  Used Avail Use% Mounted on\n"
        "/dev/vda1       9.6G  2.4G  7.2G  25% /\n"
        "tmpfs           197M  1.1M  196M   1% /run\n"
        "/dev/vda15      105M  6.1M   99M   6% /boot/efi\n"
    )


def _ps(ctx: ShellContext) -> str:
    rows = [
        ("root", 1, "/sbin/init"),
        ("root", 412, "/lib/systemd/systemd-journald"),
        ("root", 688, "sshd: /usr/sbin/sshd -D"),
        ("root", 731, f"/sbin/agetty -o -p -- \\u --keep-baud 115200,57600,38400,9600 {ctx.personality.tty}"),
        (ctx.user.name, 1204, "-bash"),
        (ctx.user.name, 1290, "ps"),
    ]
    return "  PID TTY          TIME CMD\n" + "".join(f"{pid:5d} ?        00:00:00 {cmd}\n" for _, pid, cmd in rows)


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


def _sleep(args: list[str]) -> CommandResult:
    if len(args) != 1:
        return CommandResult("sleep: missing operand\nTry 'sleep --help' for more information.\n")
    text = args[0]
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(text[-1:], 1.0)
    number = text[:-1] if text[-1:] in "smhd" else text
    try:
        seconds = float(number) * scale
    except ValueError:
        return CommandResult(f"sleep: invalid time interval '{text}'\nTry 'sleep --help' for more information.\n")
    return CommandResult(sleep=max(0.0, seconds))


def _cd(ctx: ShellContext, args: list[str]) -> CommandResult:
    target = args[0] if args else "~"
    path = _resolve(ctx, target)
    kind = ctx.tree.kind(path)
    if kind is Kind.DIR:
        if not ctx.tree.readable(path, ctx.user):
            return CommandResult(f"-bash: cd: {target}: Permission denied\n")
        return CommandResult(cwd=path)
    why = "Not a directory" if kind is not None else "No such file or directory"
    return CommandResult(f"-bash: cd: {target}: {why}\n")


def _touch(ctx: ShellContext, args: list[str]) -> CommandResult:
    out: list[str] = []
    writes: list[tuple[str, OverlayFile]] = []
    for target in args:
        path = _resolve(ctx, target)
        if ctx.tree.kind(path) is not None:
            continue
        if not ctx.tree.writable(path, ctx.user):
            out.append(f"touch: cannot touch '{target}': Permission denied\n")
        else:
            writes.append((path, OverlayFile(0, text="")))
    return CommandResult("".join(out), writes=tuple(writes), disk_write=4096 * len(writes))


_DD_UNITS = {"": 1, "c": 1, "w": 2, "b": 512, "K": 1024, "k": 1024, "M": 1 << 20, "G": 1 << 30}


def _dd(ctx: ShellContext, args: list[str]) -> CommandResult:
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    try:
        size_text = opts.get("bs", "512")
        unit = size_text[-1] if size_text[-1:].isalpha() else ""
        block = int(size_text[: len(size_text) - len(unit)]) * _DD_UNITS[unit]
        count = int(opts.get("count", "0"))
    except (ValueError, KeyError):
        return CommandResult(f"dd: invalid number: '{opts.get('bs', '')}'\n")
    if count <= 0 or block <= 0 or count * block > 64 << 30:
        return CommandResult("dd: this simulated dd wants count=N and bs=SIZE (at most 64G in all)\n")
    target = opts.get("of")
    writes: tuple[tuple[str, OverlayFile], ...] = ()
    if target is not None:
        path = _resolve(ctx, target)
        if ctx.tree.kind(path) is not Kind.DEVICE:
            if not ctx.tree.writable(path, ctx.user):
                return CommandResult(f"dd: failed to open '{target}': Permission denied\n")
            writes = ((path, OverlayFile(count * block)),)
    total = count * block
    seconds = max(0.001, total / 480e6)  # a virtio disk writes about 480 MB/s
    report = (
        f"{count}+0 records in\n{count}+0 records out\n"
        f"{total} bytes ({total / 1e6:.1f} MB, {total / 2**20:.0f} MiB) copied, "
        f"{seconds:.4f} s, {total / seconds / 1e6:.0f} MB/s\n"
    )
    return CommandResult(report, writes=writes, disk_write=total if writes else 0)


def _dmesg(ctx: ShellContext) -> CommandResult:
    lines = ctx.kernel_log()
    boot = "".join(line + "\r\n" for line in lines)
    since_boot = int(max(0.0, ctx.uptime - 10.0) // 30)  # a firewall log line every 30 s or so
    later = LinesFlood(partial(dmesg_line, ctx.hostname, 10.0), 0, min(since_boot, 200_000))
    return CommandResult(flood=ChainFlood([TextFlood(boot.encode()), later]))


def _uname(ctx: ShellContext, args: list[str]) -> str:
    p = ctx.personality
    if "-a" in args:
        return f"Linux {ctx.hostname} {p.kernel} {p.kernel_build} x86_64 x86_64 x86_64 GNU/Linux\n"
    parts = {"-s": "Linux", "-n": ctx.hostname, "-r": p.kernel, "-m": "x86_64"}
    chosen = [parts[a] for a in args if a in parts]
    return " ".join(chosen or ["Linux"]) + "\n"


def _id(user: User) -> str:
    if user.name == "root":
        return "uid=0(root) gid=0(root) groups=0(root)\n"
    groups = f"1000({user.name}),4(adm)" + (",27(sudo)" if user.sudo else "")
    return f"uid=1000({user.name}) gid=1000({user.name}) groups={groups}\n"


def run_command(argv: list[str], ctx: ShellContext) -> CommandResult:
    """Run one command (already split into words) as ``ctx.user`` would see it answered."""
    if not argv:
        return CommandResult()
    cmd, args = argv[0], argv[1:]
    simple: dict[str, Callable[[], str]] = {
        "hostname": lambda: ctx.hostname + "\n",
        "whoami": lambda: ctx.user.name + "\n",
        "id": lambda: _id(ctx.user),
        "pwd": lambda: ctx.cwd + "\n",
        "uname": lambda: _uname(ctx, args),
        "uptime": lambda: _uptime(ctx),
        "date": lambda: _date(ctx.now),
        "ls": lambda: _ls(ctx, args),
        "free": lambda: _free(ctx, args),
        "df": _df,
        "ps": lambda: _ps(ctx),
        "nproc": lambda: f"{ctx.vcpus}\n",
        "clear": lambda: "\x1b[H\x1b[2J",
        "true": lambda: "",
        "false": lambda: "",
    }
    if cmd in simple:
        return CommandResult(simple[cmd]())
    if cmd == "echo":
        newline = not (args[:1] == ["-n"])
        words = args[1:] if not newline else args
        return CommandResult(" ".join(words) + ("\n" if newline else ""))
    if cmd == "cd":
        return _cd(ctx, args)
    if cmd == "cat":
        return _cat(ctx, args)
    if cmd in ("head", "tail"):
        return _head_tail(ctx, cmd, args)
    if cmd in ("exit", "logout"):
        return CommandResult(exit=True)
    if cmd == "seq":
        return _seq(args)
    if cmd == "yes":
        return CommandResult(flood=YesFlood(" ".join(args) if args else "y"))
    if cmd == "dmesg":
        return _dmesg(ctx)
    if cmd == "sleep":
        return _sleep(args)
    if cmd == "touch":
        return _touch(ctx, args)
    if cmd == "dd":
        return _dd(ctx, args)
    if cmd in FULL_SCREEN:
        return CommandResult(f"{cmd}: needs a full-screen terminal; this simulated serial console has none\n")
    return CommandResult(f"{cmd}: command not found\n")
