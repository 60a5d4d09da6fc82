"""One RFB 3.8 (RFC 6143) session with a viewer of a simulated screen, sans-I/O.

Bytes from the viewer go to ``receive``; bytes for it accumulate in ``output``
(whoever owns the socket sends them and calls ``sent``). The handshake offers
security type None only (the gateway authenticates); the viewer's shared flag is
read and ignored: every session is shared, by design. Then:

- SetPixelFormat: true colour at 8, 16 or 32 bits per pixel, any shifts and maxima,
  either byte order; a colour-map format closes the session with a log line naming
  it. SetEncodings: Raw and CopyRect are used, DesktopSize is accepted (the screen
  never changes size), anything else ignored.
- FramebufferUpdateRequest: a full request is answered at once with Raw; an
  incremental one when something changed in the region: the changed text rows as
  Raw rectangles, and — when the viewer asked for CopyRect and the request covers
  the screen — rows that only moved (a scroll) as one CopyRect. Only one update is
  in flight: the next is made once ``output`` has been sent, so a viewer that does
  not read holds at most one frame here, and sees the latest picture when it does.
- KeyEvent: typed on tty1 (``keys.key_bytes``); Ctrl-Alt-Del asks the guest to
  reboot. PointerEvent and ClientCutText are read and dropped (cut text is
  discarded as it streams, never buffered).
- Any other message type, or a malformed handshake, closes the session (with an
  INFO log line: a client's mistake is not the server's error).

What each viewer was sent is tracked per viewer, as rows of text, so viewers that
read at different paces each get exactly what they lack.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Callable
from typing import Protocol

from simulator.screen.font import CELL_HEIGHT, CELL_WIDTH
from simulator.screen.keys import ALT, CONTROL, DELETE_KEYS, key_bytes
from simulator.screen.pixels import SERVER_FORMAT, FormatError, PixelFormat
from simulator.screen.terminal import COLUMNS, HEIGHT, LINES, WIDTH, Row, render_rows

__all__ = ["Screen", "RFBSession", "VERSION"]

log = logging.getLogger("simulator.screen")

VERSION = b"RFB 003.008\n"
SECURITY_NONE = 1
ENCODING_RAW = 0
ENCODING_COPYRECT = 1

# client message types and their fixed lengths (after which variable parts follow)
_SET_PIXEL_FORMAT, _SET_ENCODINGS, _UPDATE_REQUEST, _KEY, _POINTER, _CUT_TEXT = 0, 2, 3, 4, 5, 6
_PUMPS = 8  # flood chunks drawn, at most, while looking for a change to send

_FIXED = {_SET_PIXEL_FORMAT: 20, _SET_ENCODINGS: 4, _UPDATE_REQUEST: 10, _KEY: 8, _POINTER: 6, _CUT_TEXT: 8}


class Screen(Protocol):
    """The picture and the keyboard a session serves (``display.Display``)."""

    name: str

    @property
    def frozen(self) -> bool:
        """The guest is paused: no updates, no input."""
        ...

    def rows(self) -> list[Row]: ...

    def pump(self) -> bool:
        """Let a command printing a flood on tty1 print some more; True if it did."""
        ...

    def type(self, data: bytes) -> None: ...

    def ctrl_alt_del(self) -> None: ...


class _State(enum.Enum):
    VERSION = 1
    SECURITY = 2
    CLIENT_INIT = 3
    NORMAL = 4
    CLOSED = 5


class RFBSession:
    def __init__(self, screen: Screen, on_output: Callable[[], None]) -> None:
        self._screen = screen
        self._on_output = on_output
        self.output = bytearray(VERSION)
        self._in = bytearray()
        self._state = _State.VERSION
        self._minor = 8
        self._skip = 0  # cut text still to discard
        self.format = SERVER_FORMAT
        self.copyrect = False
        self._known: list[Row | None] = [None] * LINES  # what the viewer shows, row by row
        self._request: tuple[bool, int, int, int, int] | None = None  # incremental, cell region
        self._control: set[int] = set()
        self._alt: set[int] = set()
        self._updating = False
        self.finishing = False  # the VM is gone: send the last picture, then close
        self._final_pending = False
        self.close_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def done(self) -> bool:
        """Nothing more will be sent: the owner closes the socket once ``output`` is out."""
        return self.closed or (self.finishing and not self._final_pending)

    # Input

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        self._in += data  # one read's worth (the owner reads in bounded chunks)
        while not self.closed:
            if self._skip:
                dropped = min(self._skip, len(self._in))
                del self._in[:dropped]
                self._skip -= dropped
                if self._skip:
                    break
            if not self._next_message():
                break

    def _next_message(self) -> bool:
        """Handle one message if it is all there; False when more bytes are needed."""
        buf = self._in
        state = self._state
        if state is _State.VERSION:
            if len(buf) < 12:
                return False
            self._version(bytes(buf[:12]))
            del buf[:12]
            return True
        if state is _State.SECURITY:
            if len(buf) < 1:
                return False
            chosen = buf[0]
            del buf[:1]
            if chosen != SECURITY_NONE:
                reason = f"security type {chosen} was not offered (None only)".encode()
                self._send(struct.pack(">II", 1, len(reason)) + reason)
                self._close(f"asked for security type {chosen}")
                return True
            if self._minor == 8:  # 3.7 sends no SecurityResult for None
                self._send(struct.pack(">I", 0))
            self._state = _State.CLIENT_INIT
            return True
        if state is _State.CLIENT_INIT:
            if len(buf) < 1:
                return False
            del buf[:1]  # the shared flag: every session is shared
            name = self._screen.name.encode("utf-8")
            self._send(struct.pack(">HH", WIDTH, HEIGHT) + SERVER_FORMAT.pack() + struct.pack(">I", len(name)) + name)
            self._state = _State.NORMAL
            return True
        if not buf:
            return False
        kind = buf[0]
        fixed = _FIXED.get(kind)
        if fixed is None:
            self._close(f"unknown message type {kind}")
            return True
        if len(buf) < fixed:
            return False
        if kind == _SET_ENCODINGS:
            (count,) = struct.unpack_from(">H", buf, 2)
            if len(buf) < fixed + 4 * count:
                return False  # at most 4 + 4 * 65535 bytes: bounded by the format itself
            encodings = struct.unpack_from(f">{count}i", buf, 4)
            self.copyrect = ENCODING_COPYRECT in encodings
            del buf[: fixed + 4 * count]
            return True
        message = bytes(buf[:fixed])
        del buf[:fixed]
        if kind == _SET_PIXEL_FORMAT:
            self._set_pixel_format(message[4:20])
        elif kind == _UPDATE_REQUEST:
            incremental, x, y, w, h = struct.unpack(">xBHHHH", message)
            self._update_request(bool(incremental), x, y, w, h)
        elif kind == _KEY:
            down, keysym = struct.unpack(">xBxxI", message)
            self._key(bool(down), keysym)
        elif kind == _CUT_TEXT:
            (length,) = struct.unpack(">4xI", message)
            self._skip = length  # discarded as it arrives: QEMU has no clipboard either
        # _POINTER: a text console has no mouse
        return True

    def _version(self, data: bytes) -> None:
        if len(data) != 12 or not data.startswith(b"RFB ") or data[7:8] != b"." or data[11:] != b"\n":
            self._close(f"sent {data!r} instead of an RFB version")
            return
        try:
            major, minor = int(data[4:7]), int(data[8:11])
        except ValueError:
            self._close(f"sent {data!r} instead of an RFB version")
            return
        if major != 3:
            self._close(f"asked for RFB {major}.{minor} (3.x only)")
            return
        # 3.3 and 3.7 differ only in the security handshake; later minors speak 3.8
        self._minor = 3 if minor < 7 else min(minor, 8)
        if self._minor == 3:
            self._send(struct.pack(">I", SECURITY_NONE))  # 3.3: the server decides, no result follows
            self._state = _State.CLIENT_INIT
            return
        self._send(bytes((1, SECURITY_NONE)))
        self._state = _State.SECURITY

    def _set_pixel_format(self, data: bytes) -> None:
        try:
            self.format = PixelFormat.parse(data)
        except FormatError as refused:
            self._close(f"asked for an unsupported pixel format: {refused}")
            return
        self._known = [None] * LINES  # later rows go out in the new format: resend all

    def _update_request(self, incremental: bool, x: int, y: int, w: int, h: int) -> None:
        # the region in whole text cells, clipped to the screen (a cell partly asked
        # for is sent whole: a viewer may always get more than it asked)
        x0, y0 = min(x // CELL_WIDTH, COLUMNS), min(y // CELL_HEIGHT, LINES)
        x1 = min(-(-(x + w) // CELL_WIDTH), COLUMNS)
        y1 = min(-(-(y + h) // CELL_HEIGHT), LINES)
        if x1 <= x0 or y1 <= y0:
            x0, y0, x1, y1 = 0, 0, 0, 0  # empty: answered with an empty update
        # a full request outranks an incremental one still pending
        pending = self._request
        if pending is not None and not pending[0] and incremental:
            return
        self._request = (incremental, x0, y0, x1, y1)
        self.update()

    def _key(self, down: bool, keysym: int) -> None:
        held = self._control if keysym in CONTROL else self._alt if keysym in ALT else None
        if held is not None:
            if down:
                held.add(keysym)
            else:
                held.discard(keysym)
            return
        if not down or self._screen.frozen:
            return  # a paused guest reads nothing: keys are dropped, not held
        if keysym in DELETE_KEYS and self._control and self._alt:
            self._screen.ctrl_alt_del()
            return
        data = key_bytes(keysym, control=bool(self._control), alt=bool(self._alt))
        if data:
            self._screen.type(data)

    # Output

    def _send(self, data: bytes) -> None:
        self.output += data
        self._on_output()

    def sent(self) -> None:
        """``output`` has been written out: the next update may be made."""
        self.update()

    def finish(self) -> None:
        """The VM stopped: the viewer gets what changed since its last update, asked
        for or not, then the session ends."""
        if self.closed or self.finishing:
            return
        self.finishing = True
        self._final_pending = self._state is _State.NORMAL
        self._request = None
        self.update()
        self._on_output()

    def update(self) -> None:
        """Send an update if one is asked for, may be sent now, and has something."""
        if self.closed or self._updating or self.output or self._state is not _State.NORMAL:
            return
        if self.finishing:
            if self._final_pending:
                self._final_pending = False
                rects = self._plan(self._screen.rows(), (True, 0, 0, COLUMNS, LINES))
                if rects:
                    self._send(self._message(rects))
            return
        request = self._request
        if request is None or (request[0] and self._screen.frozen):
            return
        self._updating = True
        try:
            rects = self._plan(self._screen.rows(), request)
            # a command flooding tty1 prints at the viewers' pace; output that leaves
            # the picture as it was (``yes``) is drawn a bounded number of times per request
            for _ in range(_PUMPS):
                if rects or not request[0] or not self._screen.pump():
                    break
                rects = self._plan(self._screen.rows(), request)
            if not rects and request[0]:
                return  # nothing new: the request waits for a change
            self._request = None
            self._send(self._message(rects))
        finally:
            self._updating = False

    def _plan(self, rows: list[Row], request: tuple[bool, int, int, int, int]) -> list[bytes]:
        """The rectangles (encoded) that bring the viewer's region up to ``rows``."""
        incremental, x0, y0, x1, y1 = request
        if x1 <= x0 or y1 <= y0:
            return []
        known = self._known
        full_width = x0 == 0 and x1 == COLUMNS
        rects: list[bytes] = []
        if incremental and self.copyrect and full_width and y0 == 0 and y1 == LINES:
            rects += self._scroll(rows)
        bands: list[tuple[int, int]] = []
        for y in range(y0, y1):
            if incremental and known[y] == rows[y]:
                continue
            if bands and bands[-1][1] == y:
                bands[-1] = (bands[-1][0], y + 1)
            else:
                bands.append((y, y + 1))
        fmt = self.format
        for top, bottom in bands:
            pixels = render_rows(rows[top:bottom], x0 * CELL_WIDTH, (x1 - x0) * CELL_WIDTH, fmt)
            header = struct.pack(
                ">HHHHi",
                x0 * CELL_WIDTH,
                top * CELL_HEIGHT,
                (x1 - x0) * CELL_WIDTH,
                (bottom - top) * CELL_HEIGHT,
                ENCODING_RAW,
            )
            rects.append(header + pixels)
            for y in range(top, bottom):
                # a row sent in part leaves the viewer with a mix of old and new
                known[y] = rows[y] if full_width else (known[y] if known[y] == rows[y] else None)
        return rects

    def _scroll(self, rows: list[Row]) -> list[bytes]:
        """A CopyRect for the longest run of rows the viewer already has elsewhere
        (text that scrolled up or down), or nothing."""
        known = self._known
        ids: dict[Row, int] = {}
        new = [ids.setdefault(row, len(ids)) for row in rows]
        old = [ids.get(row, -1) if row is not None else -2 for row in known]
        best = (0, 0, 0, 0)  # (saved rows, shift, first, end)
        for shift in range(-(LINES - 1), LINES):
            if shift == 0:
                continue
            run_start, saved = -1, 0
            for y in range(LINES + 1):
                src = y + shift
                moved = y < LINES and 0 <= src < LINES and old[src] == new[y]
                if moved:
                    if run_start < 0:
                        run_start, saved = y, 0
                    saved += old[y] != new[y]  # rows already right need no copy
                    continue
                if run_start >= 0 and saved > best[0]:
                    best = (saved, shift, run_start, y)
                run_start = -1
        saved, shift, first, end = best
        if saved == 0:
            return []
        moved_rows = known[first + shift : end + shift]
        known[first:end] = moved_rows
        return [
            struct.pack(
                ">HHHHiHH",
                0,
                first * CELL_HEIGHT,
                WIDTH,
                (end - first) * CELL_HEIGHT,
                ENCODING_COPYRECT,
                0,
                (first + shift) * CELL_HEIGHT,
            )
        ]

    @staticmethod
    def _message(rects: list[bytes]) -> bytes:
        return struct.pack(">BxH", 0, len(rects)) + b"".join(rects)

    # Closing

    def _close(self, reason: str) -> None:
        log.info("screen of %s: closing a viewer that %s", self._screen.name, reason)
        self.close_reason = reason
        self._state = _State.CLOSED
        self._in.clear()
        self._on_output()
