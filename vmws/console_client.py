"""``vmws console NAME``: attach this terminal to a VM's shared console, like virsh console.

Raw tty mode while attached (restored on every exit path), the escape key (``^]``)
detaches. Guest output goes through ``TerminalFilter`` whatever stdout is (a tty or a
pipe), so it cannot retitle this terminal, write its clipboard or send it any other
control string; on detach the modes the guest switched on are switched off. Works with
a non-tty stdin too (pipes, pexpect): input is forwarded as it comes and, when it
ends, output is shown for ``--linger`` seconds before detaching.

``--record FILE`` writes the session as an asciinema v2 recording (``vmws/recording.py``):
exactly the filtered output this terminal was shown, with the time it arrived.
``--watch`` joins watch-only (``?mode=watch``): keys are not sent, only the escape key
is read.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import signal
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import IO
from urllib.parse import quote, urlencode

import orjson
import tornado.websocket

from vmws.codes import CloseCode
from vmws.logs import redact
from vmws.recording import DEFAULT_HEIGHT, DEFAULT_WIDTH, CastRecorder
from vmws.termfilter import TerminalFilter

__all__ = ["run_console", "parse_escape", "read_token"]

_CLOSE_EXPLAINED: dict[int, str] = {
    CloseCode.GOING_AWAY: "server going away",
    CloseCode.UNAUTHENTICATED: "not authenticated",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.VM_NOT_FOUND: "no such VM",
    CloseCode.VM_NOT_RUNNING: "VM is not running",
}


def parse_escape(text: str) -> bytes | None:
    """``^]`` → ``b"\\x1d"``; ``none`` disables the escape key."""
    if text.lower() == "none":
        return None
    if len(text) == 2 and text[0] == "^" and 0x40 <= ord(text[1].upper()) <= 0x5F:
        return bytes([ord(text[1].upper()) - 0x40])
    if len(text) == 1:
        return text.encode()
    raise ValueError(f"invalid escape {text!r}: use a caret form such as ^] or ^X, or 'none'")


def read_token(token_file: str | None) -> str:
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise ValueError(f"cannot read token file {token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get("VMWS_TOKEN", "").strip()
    if not token:
        raise ValueError("no token: set VMWS_TOKEN or pass --token-file FILE")
    return token


def console_url(base: str, name: str, token: str, since: int | None, watch: bool = False) -> str:
    base = base.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    query = {"token": token}
    if since is not None:
        query["since"] = str(since)
    if watch:
        query["mode"] = "watch"
    return f"{base}/ws/vms/{quote(name, safe='')}/console?{urlencode(query)}"


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[bool]:
    """Raw mode on a tty (restored however we leave); nothing for pipes."""
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_console(args: argparse.Namespace) -> int:
    token = read_token(args.token_file)
    escape = parse_escape(args.escape)
    url = console_url(args.url, args.name, token, args.since, args.watch)
    with open_recording(args.record) as record:
        return asyncio.run(_attach(url, args.name, escape, args.escape, args.linger, args.watch, record))


@contextlib.contextmanager
def open_recording(path: str | None) -> Iterator[IO[bytes] | None]:
    """The file ``--record`` names, created private (0600: a console shows what was
    typed at it, passwords not echoed aside), or None without ``--record``."""
    if path is None:
        yield None
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ValueError(f"cannot write the recording {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        yield fh


def _terminal_size(fd: int) -> tuple[int, int]:
    """This terminal's columns and rows, or 80×24 when stdout is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return DEFAULT_WIDTH, DEFAULT_HEIGHT
    return size.columns or DEFAULT_WIDTH, size.lines or DEFAULT_HEIGHT


async def _attach(
    url: str,
    name: str,
    escape: bytes | None,
    escape_text: str,
    linger: float,
    watch: bool = False,
    record: IO[bytes] | None = None,
) -> int:
    try:
        conn = await tornado.websocket.websocket_connect(url, connect_timeout=10)
    except Exception as exc:  # refused, DNS, TLS, HTTP error: all mean "cannot connect"
        print(f"vmws: cannot connect to {redact(url)}: {exc}", file=sys.stderr)
        return 1
    stdin = sys.stdin.fileno()
    with raw_terminal(stdin) as is_tty:
        newline = "\r\n" if is_tty else "\n"
        if escape is not None:
            how = ", watch-only" if watch else ""
            print(
                f"Connected to {name} (escape character is {escape_text}{how}){newline}",
                end="",
                file=sys.stderr,
                flush=True,
            )
        session = _Session(conn, escape, is_tty, linger, watch, record)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, session.done.set)
        try:
            code = await session.run(stdin)
        finally:
            session.undo_terminal_changes()
    if session.message:
        print(("\n" if is_tty else "") + session.message, file=sys.stderr, flush=True)
    return code


class _Session:
    def __init__(
        self,
        conn: tornado.websocket.WebSocketClientConnection,
        escape: bytes | None,
        is_tty: bool,
        linger: float,
        watch: bool = False,
        record: IO[bytes] | None = None,
    ) -> None:
        self.conn = conn
        self.escape = escape
        self.is_tty = is_tty
        self.linger = linger
        self.done = asyncio.Event()
        self.message = ""
        self.exit_code = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._filter = TerminalFilter()
        self._out = sys.stdout.buffer
        self.watch = watch
        self._record = record
        self._recorder: CastRecorder | None = None
        if record is not None:
            width, height = _terminal_size(sys.stdout.fileno())
            self._recorder = CastRecorder(time.time(), width, height)
            self._write_record(self._recorder.header())

    def _write_record(self, line: str) -> None:
        """Append to the recording, flushed at once so a killed session keeps its events."""
        if self._record is not None and line:
            self._record.write(line.encode("utf-8"))
            self._record.flush()

    async def run(self, stdin: int) -> int:
        reader = asyncio.create_task(self._read_server())
        input_task = asyncio.create_task(self._read_input(stdin))
        await self.done.wait()
        input_task.cancel()
        self.conn.close()
        await asyncio.gather(reader, input_task, return_exceptions=True)
        return self.exit_code

    def undo_terminal_changes(self) -> None:
        """On detach, switch off what the guest switched on (alternate screen, mouse
        reporting, bracketed paste, hidden cursor, colours...), with CSI/ESC sequences
        only, as users of ``virsh console`` expect. Written to pipes too: the filter
        forwarded the sequences there, so whatever shows the pipe needs the reset too."""
        reset = self._filter.reset_sequence()
        if reset:
            with contextlib.suppress(OSError):  # a closed pipe: nobody left to reset
                self._out.write(reset.encode())
                self._out.flush()
            if self._recorder is not None:
                self._write_record(self._recorder.filtered(time.time(), reset))

    async def _read_server(self) -> None:
        try:
            while True:
                raw = await self.conn.read_message()
                if raw is None:
                    code = self.conn.close_code
                    if code not in (None, CloseCode.NORMAL_CLOSURE) and not self.message:
                        reason = self.conn.close_reason or _CLOSE_EXPLAINED.get(code, "")
                        self.message = f"vmws: connection closed ({code}{': ' + reason if reason else ''})"
                        self.exit_code = 1
                    return
                message = orjson.loads(raw)
                kind, data = message.get("type"), message.get("data") or {}
                if kind == "console":
                    if data.get("content"):
                        shown = self._filter.feed(data["content"])
                        self._out.write(shown.encode("utf-8", "replace"))
                        self._out.flush()
                        if self._recorder is not None:
                            self._write_record(self._recorder.filtered(time.time(), shown))
                    if data.get("eof"):
                        self.message = "vmws: console closed: the VM stopped"
                        return
                elif kind == "error":
                    self.message = f"vmws: {data.get('code')}: {data.get('message')}"
                    self.exit_code = 1
        finally:
            self.done.set()

    async def _read_input(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            loop.add_reader(fd, lambda: queue.put_nowait(_read_fd(fd)))
            watching = True
        except (PermissionError, OSError):  # a regular file cannot be polled: read it in a thread
            watching = False
        try:
            while True:
                chunk = await queue.get() if watching else await loop.run_in_executor(None, _read_fd, fd)
                if not chunk:
                    if watching:
                        loop.remove_reader(fd)
                        watching = False
                    await asyncio.sleep(self.linger)
                    self.done.set()
                    return
                if self.escape is not None and self.escape in chunk:
                    chunk = chunk[: chunk.index(self.escape)]
                    if not self.watch:
                        self._send(chunk)
                    self.done.set()
                    return
                if not self.watch:  # watch-only: the server would refuse it anyway
                    self._send(chunk)
        finally:
            if watching:
                loop.remove_reader(fd)

    def _send(self, chunk: bytes) -> None:
        text = self._decoder.decode(chunk)
        if text:
            frame = {"type": "console_input", "data": {"content": text}}
            self.conn.write_message(orjson.dumps(frame).decode())


def _read_fd(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
