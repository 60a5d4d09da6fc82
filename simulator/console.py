"""A Linux serial console as a pure state machine: getty, login and a shell's line editor.

Bytes typed in go to ``feed``; bytes the guest prints leave through the host's
``emit``. The line discipline is that of a tty in canonical mode with echo: typed
characters are echoed, DEL and ^H erase one character (``\\b \\b``), Enter (CR, LF or
CR LF) ends a line and is echoed as CR LF, ^C abandons the line (``^C`` and a new
prompt) or stops a running flood at once, discarding type-ahead as a tty does, ^D on
an empty shell line logs out. Escape sequences (arrow keys) and other control keys
are swallowed. The password is read without echo, and a wrong one answers
``Login incorrect`` after a delay, as ``login`` does.

While a flood runs (``yes``, ``seq``) the console stops reading input (type-ahead
waits) and its output is pulled by ``pump``; when the flood ends, the prompt comes
back and waiting input is read.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from simulator.fleet import Personality
from simulator.shell import Flood, ShellContext, home_dir, run_command

__all__ = ["ConsoleHost", "ConsoleState", "Console"]

_CTRL_C = 0x03
_CTRL_D = 0x04
_BACKSPACE = 0x08
_DEL = 0x7F
_ESC = 0x1B
_CR = 0x0D
_LF = 0x0A


class ConsoleHost(Protocol):
    """What the console needs from the machine it runs in."""

    def emit(self, data: bytes) -> None: ...

    def later(self, delay: float, callback: Callable[[], None]) -> None: ...

    def now(self) -> float: ...

    def uptime(self) -> float: ...

    def flood_started(self) -> None: ...


class ConsoleState(enum.Enum):
    BOOTING = "booting"  # kernel and init messages; nobody reads input yet
    LOGIN = "login"  # getty reading a user name
    PASSWORD = "password"  # login reading a password, echo off
    CHECKING = "checking"  # a wrong password is being "checked" (the failure delay)
    SHELL = "shell"  # the shell reading a command line
    FLOOD = "flood"  # a command is printing volume; output pulled by pump()


class _Esc(enum.Enum):
    NONE = 0
    ESC = 1
    CSI = 2


class Console:
    def __init__(self, hostname: str, personality: Personality, host: ConsoleHost, failure_delay: float) -> None:
        self.hostname = hostname
        self.personality = personality
        self._host = host
        self._failure_delay = failure_delay
        self.state = ConsoleState.BOOTING
        self._pending = bytearray()
        self._line = bytearray()
        self._user = ""
        self._cwd = home_dir(personality)
        self._flood: Flood | None = None
        self._esc = _Esc.NONE
        self._after_cr = False
        self._out = bytearray()
        # bumped on reboot so a login-failure timer from before it does nothing
        self._generation = 0

    # Public methods

    @property
    def flooding(self) -> bool:
        return self.state is ConsoleState.FLOOD

    def reset(self) -> None:
        """The guest rebooted or powered on: back to the boot log, nothing typed survives."""
        self._generation += 1
        self.state = ConsoleState.BOOTING
        self._pending.clear()
        self._line.clear()
        self._flood = None
        self._esc = _Esc.NONE
        self._after_cr = False
        self._cwd = home_dir(self.personality)

    def show_login(self) -> None:
        """getty starts on the serial line: banner and login prompt."""
        self.state = ConsoleState.LOGIN
        self._line.clear()
        self._host.emit(self.login_banner())

    def login_banner(self) -> bytes:
        p = self.personality
        return f"\r\n{p.os_name} {self.hostname} {p.tty}\r\n\r\n{self.hostname} login: ".encode()

    def screen(self) -> bytes:
        """What a terminal attached now would reasonably still show, for a new reader:
        the login banner when getty is waiting, else nothing (a real serial line
        keeps no history; the hub's scrollback covers later viewers)."""
        if self.state is ConsoleState.LOGIN and not self._line:
            return self.login_banner()
        return b""

    def feed(self, data: bytes) -> None:
        """Keystrokes arrive from the serial line."""
        if self.state is ConsoleState.BOOTING:
            return
        self._pending += data
        self._drain()
        self._flush()

    def pump(self, max_bytes: int) -> int:
        """Produce up to about ``max_bytes`` of flood output; returns bytes produced."""
        flood = self._flood
        if flood is None:
            return 0
        chunk = flood.produce(max_bytes)
        if chunk:
            self._host.emit(chunk)
        if flood.finished:
            self._flood = None
            self._enter_shell()
            self._drain()
            self._flush()
        return len(chunk)

    # Input processing

    def _flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self._host.emit(data)

    def _reading(self) -> bool:
        return self.state in (ConsoleState.LOGIN, ConsoleState.PASSWORD, ConsoleState.SHELL)

    def _drain(self) -> None:
        while True:
            self._process()
            if self.state is not ConsoleState.FLOOD or _CTRL_C not in self._pending:
                return
            # the tty flushes its input queue on the signal: type-ahead before ^C is lost
            del self._pending[: self._pending.index(_CTRL_C) + 1]
            self._flood = None
            self._out += b"^C\r\n"
            self._enter_shell()

    def _process(self) -> None:
        pending = self._pending
        i = 0
        while i < len(pending) and self._reading():
            self._key(pending[i])
            i += 1
        del pending[:i]

    def _key(self, byte: int) -> None:
        after_cr, self._after_cr = self._after_cr, byte == _CR
        if self._esc is not _Esc.NONE:
            self._escape(byte)
        elif byte == _ESC:
            self._esc = _Esc.ESC
        elif byte in (_CR, _LF):
            if byte == _LF and after_cr:
                return  # CR LF from a client is one Enter
            self._enter()
        elif byte in (_DEL, _BACKSPACE):
            self._erase()
        elif byte == _CTRL_C:
            self._out += b"^C\r\n"
            self._line.clear()
            self._prompt()
        elif byte == _CTRL_D:
            if self.state is ConsoleState.SHELL and not self._line:
                self._out += b"logout\r\n"
                self._logout()
        elif byte < 0x20:
            pass  # tab and other control keys: nothing harmful
        else:
            self._line.append(byte)
            if self.state is not ConsoleState.PASSWORD:
                self._out.append(byte)

    def _escape(self, byte: int) -> None:
        if self._esc is _Esc.ESC:
            self._esc = _Esc.CSI if byte == ord("[") else _Esc.NONE
        elif 0x40 <= byte <= 0x7E:
            self._esc = _Esc.NONE

    def _erase(self) -> None:
        if not self._line:
            return
        # drop a whole UTF-8 character: continuation bytes, then its lead byte
        while self._line and 0x80 <= self._line[-1] < 0xC0:
            self._line.pop()
        if self._line:
            self._line.pop()
        if self.state is not ConsoleState.PASSWORD:
            self._out += b"\b \b"

    def _enter(self) -> None:
        line = self._line.decode("utf-8", "replace")
        self._line.clear()
        self._out += b"\r\n"
        if self.state is ConsoleState.LOGIN:
            if line.strip():
                self._user = line.strip()
                self.state = ConsoleState.PASSWORD
                self._out += b"Password: "
            else:
                self._prompt()
        elif self.state is ConsoleState.PASSWORD:
            self._check_password(line)
        else:
            self._run(line)

    def _check_password(self, password: str) -> None:
        p = self.personality
        if self._user == p.username and password == p.password:
            self._out += (
                f"Welcome to {p.os_name} (GNU/Linux {p.kernel} x86_64)\r\n\r\n"
                " * Documentation:  https://help.ubuntu.com\r\n\r\n"
            ).encode()
            self._cwd = home_dir(p)
            self._enter_shell()
            return
        self.state = ConsoleState.CHECKING
        generation = self._generation

        def fail() -> None:
            if generation != self._generation or self.state is not ConsoleState.CHECKING:
                return
            self.state = ConsoleState.LOGIN
            self._out += f"\r\nLogin incorrect\r\n{self.hostname} login: ".encode()
            self._drain()
            self._flush()

        self._host.later(self._failure_delay, fail)

    def _run(self, line: str) -> None:
        ctx = ShellContext(
            hostname=self.hostname,
            personality=self.personality,
            cwd=self._cwd,
            now=self._host.now(),
            uptime=self._host.uptime(),
        )
        result = run_command(line, ctx)
        self._out += result.output.replace("\n", "\r\n").encode()
        if result.cwd is not None:
            self._cwd = result.cwd
        if result.logout:
            self._out += b"logout\r\n"
            self._logout()
        elif result.flood is not None:
            self._flood = result.flood
            self.state = ConsoleState.FLOOD
            self._host.flood_started()
        else:
            self._prompt()

    # Prompts

    def _logout(self) -> None:
        self._line.clear()
        self.state = ConsoleState.LOGIN
        self._out += self.login_banner()

    def _enter_shell(self) -> None:
        self.state = ConsoleState.SHELL
        self._prompt()

    def _prompt(self) -> None:
        if self.state is ConsoleState.LOGIN:
            self._out += f"{self.hostname} login: ".encode()
        elif self.state is ConsoleState.PASSWORD:
            # ^C at the password prompt: login gives up and getty asks again
            self.state = ConsoleState.LOGIN
            self._out += f"{self.hostname} login: ".encode()
        else:
            home = home_dir(self.personality)
            where = "~" + self._cwd[len(home):] if self._cwd == home or self._cwd.startswith(home + "/") else self._cwd
            sigil = "#" if self.personality.username == "root" else "$"
            self._out += f"{self.personality.username}@{self.hostname}:{where}{sigil} ".encode()
