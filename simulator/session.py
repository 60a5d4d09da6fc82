"""One login on a simulated console: who is typing (``sudo -i`` pushes root onto a
stack, ``exit`` pops it), where they are, the files they wrote, sudo's password
prompt and cached credentials, and output redirection.

The console (``simulator/console.py``) owns the keyboard and the screen; it hands a
finished command line to ``Session.run`` and gets a ``Step`` back saying what to do
next: print, drain a flood, wait (``sleep``), stay busy until Ctrl-C (``yes >
/dev/null``), read a hidden line (sudo's password), or log out. Made at login and
dropped at logout, so a VM nobody logged into holds none of this.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from simulator.files import FileTree, Kind, OverlayFile
from simulator.fleet import Personality, User
from simulator.floods import Flood, SeqFlood
from simulator.shell import CommandResult, ShellContext, run_command

__all__ = ["Step", "Session", "BUSY_WRITE_RATE", "SUDO_CACHE"]

BUSY_WRITE_RATE = 300e6  # bytes/s that `yes > FILE` pushes to the virtual disk
SUDO_CACHE = 900.0  # seconds sudo remembers a password, as its default timestamp_timeout
_KEEP_TEXT = 64 * 1024  # a written file longer than this keeps only its size
_MAX_FILES = 64
_METADATA = 4096  # a file write also touches an inode and the journal
_ROOT_SHELLS = (["-i"], ["-s"], ["su"], ["su", "-"], ["-i", "bash"], ["bash"])


@dataclass(frozen=True, slots=True)
class Step:
    """What the console does after a command line (or a sudo password)."""

    output: str = ""
    flood: Flood | None = None
    sleep: float | None = None
    busy: bool = False  # an endless command whose output goes to a file: runs until ^C
    ask: str | None = None  # read a hidden line and pass it to Session.password
    logout: bool = False
    disk_write: int = 0


@dataclass(frozen=True, slots=True)
class _Redirect:
    target: str
    append: bool


@dataclass(slots=True)
class _SudoRequest:
    argv: list[str]
    redirect: _Redirect | None
    tries: int = 0


class Session:
    def __init__(
        self,
        personality: Personality,
        hostname: str,
        user: User,
        *,
        memory_mib: int,
        vcpus: int,
        now: Callable[[], float],
        uptime: Callable[[], float],
        kernel_log: Callable[[], list[str]],
    ) -> None:
        self.personality = personality
        self.hostname = hostname
        self._memory_mib = memory_mib
        self._vcpus = vcpus
        self._now = now
        self._uptime = uptime
        self._kernel_log = kernel_log
        self._stack: list[tuple[User, str]] = [(user, user.home)]
        self._overlay: dict[str, OverlayFile] = {}
        self._sudo_until = float("-inf")
        self._pending: _SudoRequest | None = None
        self._busy_path: str | None = None

    # Queries

    @property
    def user(self) -> User:
        return self._stack[-1][0]

    @property
    def cwd(self) -> str:
        return self._stack[-1][1]

    def prompt(self) -> str:
        user, cwd = self._stack[-1]
        home = user.home
        where = "~" + cwd[len(home) :] if cwd == home or cwd.startswith(home + "/") else cwd
        sigil = "#" if user.name == "root" else "$"
        host = self.hostname.split(".", 1)[0]
        return self.personality.prompt.format(user=user.name, host=host, cwd=where, sigil=sigil)

    def welcome(self) -> str:
        p = self.personality
        values = {
            "os_name": p.os_name,
            "kernel": p.kernel,
            "kernel_build": p.kernel_build,
            "hostname": self.hostname,
            "tty": p.tty,
        }
        text = p.welcome.format(**values)
        if p.motd:
            text += p.motd if p.motd.endswith("\n") else p.motd + "\n"
            text += "\n"
        return text

    def busy_bytes(self, seconds: float) -> int:
        """What a busy ``yes > FILE`` has written after ``seconds``."""
        return int(BUSY_WRITE_RATE * max(0.0, seconds)) if self._busy_path is not None else 0

    # Commands

    def run(self, line: str) -> Step:
        """Run a finished command line."""
        parsed = _parse(line)
        if isinstance(parsed, str):
            return Step(parsed)
        argv, redirect = parsed
        if not argv:
            return Step()
        if argv[0] == "sudo":
            return self._sudo(argv[1:], redirect)
        return self._execute(argv, redirect, self.user)

    def password(self, text: str) -> Step:
        """The hidden line read for sudo."""
        pending = self._pending
        if pending is None:
            return Step()
        user = self.user
        if text != user.password:
            pending.tries += 1
            if pending.tries >= 3:
                self._pending = None
                return Step("sudo: 3 incorrect password attempts\n")
            return Step("Sorry, try again.\n", ask=f"[sudo] password for {user.name}: ")
        self._pending = None
        if not user.sudo:
            return Step(f"{user.name} is not in the sudoers file.  This incident will be reported.\n")
        self._sudo_until = self._now() + SUDO_CACHE
        return self._as_root(pending.argv, pending.redirect)

    def cancel(self) -> None:
        """Ctrl-C at sudo's password prompt."""
        self._pending = None

    def exit(self) -> Step:
        """``exit``, ``logout`` or Ctrl-D: leave the innermost shell."""
        if len(self._stack) > 1:
            self._stack.pop()
            return Step("logout\n")
        return Step(logout=True)

    def end_busy(self, seconds: float) -> int:
        """Ctrl-C stopped a busy ``yes > FILE``: keep the file's size, return bytes written."""
        written = self.busy_bytes(seconds)
        path, self._busy_path = self._busy_path, None
        if path is None:
            return 0
        previous = self._overlay.get(path)
        self._store(path, OverlayFile(written + (previous.size if previous else 0)))
        return written

    # Running

    def _context(self, user: User) -> ShellContext:
        return ShellContext(
            hostname=self.hostname,
            personality=self.personality,
            user=user,
            cwd=self.cwd,
            now=self._now(),
            uptime=self._uptime(),
            tree=FileTree(self.personality, self.hostname, self._overlay),
            memory_mib=self._memory_mib,
            vcpus=self._vcpus,
            kernel_log=self._kernel_log,
        )

    def _execute(self, argv: list[str], redirect: _Redirect | None, user: User) -> Step:
        ctx = self._context(user)
        result = run_command(argv, ctx)
        if result.exit:
            return self.exit()
        if result.cwd is not None:
            self._stack[-1] = (self._stack[-1][0], result.cwd)
        for path, file in result.writes:
            self._store(path, file)
        if redirect is not None:
            return self._redirect(result, redirect, ctx)
        return Step(output=result.output, flood=result.flood, sleep=result.sleep, disk_write=result.disk_write)

    def _redirect(self, result: CommandResult, redirect: _Redirect, ctx: ShellContext) -> Step:
        path = posixpath.normpath(posixpath.join(ctx.cwd, _home(redirect.target, ctx.user)))
        tree = ctx.tree
        kind = tree.kind(path)
        flood = result.flood
        endless = flood is not None and flood.size_hint() is None
        if kind is Kind.DEVICE:  # /dev/null: output gone, time still spent
            return Step(sleep=result.sleep, busy=endless, disk_write=result.disk_write)
        if kind is Kind.DIR:
            return Step(f"-bash: {redirect.target}: Is a directory\n")
        if not tree.writable(path, ctx.user) or (path not in self._overlay and len(self._overlay) >= _MAX_FILES):
            return Step(f"-bash: {redirect.target}: Permission denied\n")
        if endless:
            self._busy_path = path
            return Step(busy=True, disk_write=result.disk_write)
        previous = self._overlay.get(path) if redirect.append else None
        if flood is None:
            file = OverlayFile(len(result.output.encode()), text=result.output)
        elif isinstance(flood, SeqFlood) and previous is None:
            file = OverlayFile(flood.size_hint() or 0, seq=flood.span)
        else:
            head = flood.produce(_KEEP_TEXT)
            text = head.replace(b"\r\n", b"\n").decode("utf-8", "replace")
            rest = 0 if flood.finished else flood.size_hint() or 0
            file = OverlayFile(len(text.encode()) + rest, text=text if flood.finished else None)
        written = file.size
        if previous is not None:
            joined = (previous.text + file.text) if previous.text is not None and file.text is not None else None
            file = OverlayFile(previous.size + file.size, text=joined)
        self._store(path, file)
        return Step(sleep=result.sleep, disk_write=result.disk_write + written + _METADATA)

    def _store(self, path: str, file: OverlayFile) -> None:
        if file.text is not None and len(file.text) > _KEEP_TEXT:
            file = OverlayFile(file.size)
        self._overlay[path] = file

    # sudo

    def _sudo(self, argv: list[str], redirect: _Redirect | None) -> Step:
        if not argv:
            return Step("usage: sudo -h | -K | -k | -V\nusage: sudo [-i | -s] [command [arg ...]]\n")
        if argv in (["-k"], ["-K"]):
            self._sudo_until = float("-inf")
            return Step()
        if self.user.name == "root" or self._now() < self._sudo_until:
            return self._as_root(argv, redirect)
        self._pending = _SudoRequest(argv, redirect)
        return Step(ask=f"[sudo] password for {self.user.name}: ")

    def _as_root(self, argv: list[str], redirect: _Redirect | None) -> Step:
        root = self.personality.user("root") or User("root", "", sudo=True)
        if argv in _ROOT_SHELLS:
            self._stack.append((root, root.home))
            return Step()
        if argv[0] == "cd":
            return Step("sudo: cd: command not found\n")
        if argv[0].startswith("-"):
            return Step(f"sudo: option {argv[0]} is not simulated; try sudo -i or sudo COMMAND\n")
        return self._execute(argv, redirect, root)


def _home(path: str, user: User) -> str:
    return user.home + path[1:] if path == "~" or path.startswith("~/") else path


def _parse(line: str) -> tuple[list[str], _Redirect | None] | str:
    """Words and an output redirection, or a message for what this shell cannot do."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        # an unterminated quote: bash would wait for more input; answering at once
        # keeps the console simple and is what a user pressing Ctrl-C would reach
        tokens = line.split()
    argv: list[str] = []
    redirect: _Redirect | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in (">", ">>"):
            if i + 1 >= len(tokens) or tokens[i + 1] in (">", ">>", "|", "&", ";", "<"):
                return "-bash: syntax error near unexpected token `newline'\n"
            redirect = _Redirect(tokens[i + 1], token == ">>")
            i += 2
            continue
        if token and token[0] in "|&;<":
            return f"-bash: this simulated shell runs one command at a time (no '{token}')\n"
        argv.append(token)
        i += 1
    return argv, redirect
