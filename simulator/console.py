"""A Linux serial console as a pure state machine: getty, login and a shell's line editor.

Bytes typed in go to ``feed``; bytes the guest prints leave through the host's
``emit``. The line discipline is that of a tty in canonical mode with echo: typed
characters are echoed, DEL and ^H erase one character (``\\b \\b``), Enter (CR, LF or
CR LF) ends a line and is echoed as CR LF, ^C abandons the line (``^C`` and a new
prompt) or stops a running command at once, discarding type-ahead as a tty does, ^D
on an empty shell line logs out. Escape sequences (arrow keys), tab and other control
keys are swallowed, and only whole, printable UTF-8 characters are echoed (no C1
controls), so nothing typed can send the viewers' terminals an escape sequence.
Passwords (login's and sudo's) are read without echo; a wrong login password answers
``Login incorrect`` after a delay, as ``login`` does.

While a command runs — a flood (``yes``, ``seq``, ``cat`` of a big log) pulled by
``pump``, a ``sleep``, or ``yes > /dev/null`` busy until interrupted — the console
stops reading input (type-ahead waits); when it ends, the prompt comes back and
waiting input is read. What the logged-in user is doing lives in a ``Session``.

Input is bounded as a tty's line discipline bounds it: ``MAX_INPUT`` (4 KiB, Linux's
``N_TTY_BUF_SIZE``) holds the line being edited (Enter always fits) and, separately,
the type-ahead waiting while a command runs; what arrives beyond that is dropped
unechoed, as a UART drops bytes nobody reads. ^C is acted on as it arrives even
then, as ISIG characters are.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from simulator.fleet import Personality
from simulator.floods import Flood
from simulator.session import Session, Step

__all__ = ["ConsoleHost", "ConsoleState", "Console", "MAX_INPUT"]

MAX_INPUT = 4096  # bytes of unread input a tty holds (N_TTY_BUF_SIZE); the rest is dropped

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

    def kernel_log(self) -> list[str]: ...

    def disk_written(self, nbytes: int) -> None: ...


class ConsoleState(enum.Enum):
    BOOTING = "booting"  # kernel and init messages; nobody reads input yet
    LOGIN = "login"  # getty reading a user name
    PASSWORD = "password"  # login reading a password, echo off
    CHECKING = "checking"  # a wrong password is being "checked" (the failure delay)
    SHELL = "shell"  # the shell reading a command line
    SECRET = "secret"  # sudo reading a password, echo off
    FLOOD = "flood"  # a command is printing volume; output pulled by pump()
    BUSY = "busy"  # a command runs without printing (sleep, yes > FILE) until done or ^C


class _Esc(enum.Enum):
    NONE = 0
    ESC = 1
    CSI = 2


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


class Console:
    __slots__ = (
        "hostname", "personality", "state", "_host", "_failure_delay", "_memory_mib", "_vcpus", "_pending",
        "_line", "_utf8", "_utf8_need", "_user", "_session", "_flood", "_esc", "_after_cr", "_out",
        "_generation", "_busy_since", "_busy_endless",
    )  # fmt: skip

    def __init__(
        self,
        hostname: str,
        personality: Personality,
        host: ConsoleHost,
        failure_delay: float,
        *,
        memory_mib: int = 2048,
        vcpus: int = 2,
        at_login: bool = False,
    ) -> None:
        self.hostname = hostname
        self.personality = personality
        self._host = host
        self._failure_delay = failure_delay
        self._memory_mib = memory_mib
        self._vcpus = vcpus
        # a console made for a guest that is already up sits at getty's prompt
        self.state = ConsoleState.LOGIN if at_login else ConsoleState.BOOTING
        self._pending = bytearray()
        self._line = bytearray()
        self._utf8 = bytearray()  # a character being typed, byte by byte
        self._utf8_need = 0
        self._user = ""
        self._session: Session | None = None
        self._flood: Flood | None = None
        self._esc = _Esc.NONE
        self._after_cr = False
        self._out = bytearray()
        # bumped on reboot and on ^C so a timer from before does nothing
        self._generation = 0
        self._busy_since = 0.0
        self._busy_endless = False

    # Public methods

    @property
    def flooding(self) -> bool:
        """A command is keeping a vCPU busy (a flood, or ``yes > FILE``)."""
        return self.state is ConsoleState.FLOOD or (self.state is ConsoleState.BUSY and self._busy_endless)

    @property
    def pumping(self) -> bool:
        """There is flood output for readers to pull."""
        return self.state is ConsoleState.FLOOD

    def busy_writes(self) -> int:
        """Bytes a running ``yes > FILE`` has written so far (for the disk counters)."""
        if self.state is not ConsoleState.BUSY or self._session is None:
            return 0
        return self._session.busy_bytes(self._host.now() - self._busy_since)

    def reset(self) -> None:
        """The guest rebooted or powered off: back to the boot log, nothing typed survives."""
        self._generation += 1
        self.state = ConsoleState.BOOTING
        self._pending.clear()
        self._line.clear()
        self._utf8.clear()
        self._utf8_need = 0
        self._session = None
        self._flood = None
        self._esc = _Esc.NONE
        self._after_cr = False
        self._busy_endless = False

    def show_login(self) -> None:
        """getty starts on the serial line: banner and login prompt."""
        self.state = ConsoleState.LOGIN
        self._line.clear()
        self._host.emit(self.login_banner())

    def login_banner(self) -> bytes:
        p = self.personality
        issue = p.issue.format(os_name=p.os_name, hostname=self.hostname, tty=p.tty, kernel=p.kernel)
        return _crlf(f"\n{issue}\n\n{self.hostname} login: ")

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
        self._drain()  # acts on ^C wherever it is, so dropping the excess below loses no signal
        if len(self._pending) > MAX_INPUT:
            del self._pending[MAX_INPUT:]  # type-ahead beyond the tty's buffer: dropped
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
        return self.state in (ConsoleState.LOGIN, ConsoleState.PASSWORD, ConsoleState.SHELL, ConsoleState.SECRET)

    def _drain(self) -> None:
        while True:
            self._process()
            if self.state not in (ConsoleState.FLOOD, ConsoleState.BUSY) or _CTRL_C not in self._pending:
                return
            # the tty flushes its input queue on the signal: type-ahead before ^C is lost
            del self._pending[: self._pending.index(_CTRL_C) + 1]
            self._interrupt()

    def _interrupt(self) -> None:
        """^C while a command runs: it stops at once."""
        if self.state is ConsoleState.BUSY and self._session is not None:
            written = self._session.end_busy(self._host.now() - self._busy_since)
            if written:
                self._host.disk_written(written)
        self._generation += 1
        self._flood = None
        self._busy_endless = False
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
        elif byte >= 0x80:
            self._multibyte(byte)
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
            if self.state is ConsoleState.SHELL and not self._line and self._session is not None:
                self._apply(self._session.exit())
        elif byte < 0x20:
            pass  # tab and other control keys: nothing harmful
        else:
            self._type(bytes((byte,)))

    def _multibyte(self, byte: int) -> None:
        """Collect a UTF-8 character; echo it only if it is whole, valid and printable."""
        if self._utf8_need == 0:
            need = 1 if 0xC2 <= byte <= 0xDF else 2 if 0xE0 <= byte <= 0xEF else 3 if 0xF0 <= byte <= 0xF4 else 0
            if need:
                self._utf8[:] = bytes((byte,))
                self._utf8_need = need
            return  # a stray continuation byte or an invalid lead: dropped
        if not 0x80 <= byte <= 0xBF:
            self._utf8.clear()
            self._utf8_need = 0
            return
        self._utf8.append(byte)
        self._utf8_need -= 1
        if self._utf8_need:
            return
        data = bytes(self._utf8)
        self._utf8.clear()
        try:
            char = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        if char.isprintable():  # C1 controls (U+0080-U+009F, U+009B is CSI) are not
            self._type(data)

    def _type(self, data: bytes) -> None:
        if len(self._line) + len(data) >= MAX_INPUT:
            return  # the line is full: dropped unechoed, leaving room for Enter
        self._line += data
        if self.state not in (ConsoleState.PASSWORD, ConsoleState.SECRET):
            self._out += data

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
        if self.state not in (ConsoleState.PASSWORD, ConsoleState.SECRET):
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
        elif self._session is not None and self.state is ConsoleState.SECRET:
            self._apply(self._session.password(line))
        elif self._session is not None:
            self._apply(self._session.run(line))

    def _check_password(self, password: str) -> None:
        user = self.personality.user(self._user)
        if user is not None and password == user.password:
            host = self._host
            self._session = Session(
                self.personality,
                self.hostname,
                user,
                memory_mib=self._memory_mib,
                vcpus=self._vcpus,
                now=host.now,
                uptime=host.uptime,
                kernel_log=host.kernel_log,
            )
            self._out += _crlf(self._session.welcome())
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

    def _apply(self, step: Step) -> None:
        """Carry out what the session says a command line did."""
        self._out += _crlf(step.output)
        if step.disk_write:
            self._host.disk_written(step.disk_write)
        if step.logout:
            self._out += b"logout\r\n"
            self._logout()
        elif step.ask is not None:
            self.state = ConsoleState.SECRET
            self._out += step.ask.encode()
        elif step.flood is not None and not step.flood.finished:
            self._flood = step.flood
            self.state = ConsoleState.FLOOD
            self._host.flood_started()
        elif step.busy:
            self.state = ConsoleState.BUSY
            self._busy_since = self._host.now()
            self._busy_endless = True
        elif step.sleep:
            self.state = ConsoleState.BUSY
            self._busy_since = self._host.now()
            generation = self._generation

            def wake() -> None:
                if generation == self._generation and self.state is ConsoleState.BUSY:
                    self._enter_shell()
                    self._drain()
                    self._flush()

            self._host.later(step.sleep, wake)
        else:
            self._prompt()

    # Prompts

    def _logout(self) -> None:
        self._line.clear()
        self._session = None
        self.state = ConsoleState.LOGIN
        self._out += self.login_banner()

    def _enter_shell(self) -> None:
        self.state = ConsoleState.SHELL
        self._prompt()

    def _prompt(self) -> None:
        if self.state in (ConsoleState.LOGIN, ConsoleState.PASSWORD):
            # ^C at the password prompt: login gives up and getty asks again
            self.state = ConsoleState.LOGIN
            self._out += f"{self.hostname} login: ".encode()
            return
        if self.state is ConsoleState.SECRET and self._session is not None:
            self._session.cancel()
        self.state = ConsoleState.SHELL
        if self._session is not None:
            self._out += self._session.prompt().encode()
