"""Keep guest output from reprogramming the operator's own terminal.

A guest can print control strings that retitle the local terminal, write to its
clipboard (OSC 52), or load fonts and keys (DCS, and SOS/PM/APC strings).
``TerminalFilter`` drops every control string whole and passes everything else
(text, C0 controls, CSI and escape sequences: colours, cursor movement) so the
screen looks as it would without the filter.

It is the DEC/ANSI parser of vt100.net ("A parser for DEC's ANSI-compatible video
terminals", which Alacritty's ``vte`` crate follows), run on the guest's output, so
the filter reads the stream exactly as the operator's terminal will:

* the state is carried across reads, so a sequence split anywhere is still seen;
* C0 controls inside an escape or control sequence are executed (passed on) and the
  sequence goes on: ``ESC NUL ] 2;t BEL`` is an OSC, as tmux, VTE and Alacritty read it;
* ESC anywhere, CAN and SUB abort what is under way, also inside a string, so the
  text a terminal would show after them is shown;
* C1 controls are the code points U+0080-U+009F (the client reads decoded text)
  as well as their ESC forms: U+009D is OSC, U+0090 DCS, U+0098/U+009E/U+009F
  SOS/PM/APC, U+009B CSI, U+009C ST.

The input unit is the code point: ``feed()`` takes ``str`` (the ``content`` of
console messages, already decoded from UTF-8 by the server) and the output is
written to the terminal as UTF-8.

States, and how the vt100.net ones map here: ``ground``; ``escape``;
``escape_intermediate``; ``csi`` stands for csi_entry/csi_param/csi_intermediate/
csi_ignore (the filter forwards a control sequence unchanged once its final byte
arrives, and the terminal ignores what it would ignore either way); ``osc_string``;
``string`` stands for dcs_*/sos_pm_apc_string (all dropped, and only OSC ends on BEL,
as in xterm and vte).

An escape or control sequence is held back until its final character, so what the
filter has written always leaves the terminal in ground: the next write can never
complete a string introducer, and an aborted sequence costs nothing (the terminal
would have dropped it too). C0 controls met inside a held sequence are written at
once, which a terminal cannot tell apart from their place inside the sequence.
Sequences longer than ``MAX_SEQUENCE`` characters are dropped (terminals cap them too),
and code points above U+009F inside a sequence are ignored, as vte does.

``reset_sequence()`` gives the CSI/ESC sequences that undo the modes the guest's
output switched on (alternate screen, mouse reporting, bracketed paste, hidden
cursor, SGR...), for ``vmws console`` to write on detach.
"""

from __future__ import annotations

import re
import sys
import time

__all__ = ["TerminalFilter", "MAX_SEQUENCE", "bench"]

MAX_SEQUENCE = 256

_GROUND, _ESCAPE, _ESCAPE_INTERMEDIATE, _CSI, _OSC_STRING, _STRING = range(6)
STATE_NAMES = ("ground", "escape", "escape_intermediate", "csi", "osc_string", "string")

_ESC = "\x1b"
_CAN, _SUB, _BEL = "\x18", "\x1a", "\x07"
_C1_CSI, _C1_ST, _C1_OSC = "\x9b", "\x9c", "\x9d"
_C1_STRINGS = frozenset("\x90\x98\x9e\x9f")  # DCS, SOS, PM, APC
_STRINGS_7BIT = frozenset("PX^_")  # ESC P (DCS), ESC X (SOS), ESC ^ (PM), ESC _ (APC)

# The fast path (the common console case): a stretch of characters that ground passes
# on untouched and of whole, plain CSI sequences (no C0 inside, well under
# MAX_SEQUENCE) that the state machine would forward unchanged, matched in one go.
_FAST_RUN = re.compile(r"(?:[^\x1b\x80-\x9f]+|(?:\x1b\[|\x9b)[\x30-\x3f]{0,200}[\x20-\x2f]{0,50}[\x40-\x7e])+")
# In such a stretch: the CSIs that change modes, and the last SGR (only it matters).
_MODE_CSI = re.compile(r"(?:\x1b\[|\x9b)([\x30-\x3f]*)([\x20-\x2f]*)([hlr])")
_LAST_SGR = re.compile(r"(?s:.*)(?:\x1b\[|\x9b)([\x30-\x3f]*)m")
_CSI_HEAD = re.compile(r"(?:\x1b\[|\x9b)([\x30-\x3f]*)([\x20-\x2f]*)")

# DEC private modes (CSI ? n h / l) a guest may leave in a state the operator's shell
# does not expect, with the setting a terminal starts with.
_PRIVATE_MODE_DEFAULTS = {
    1: "l",  # DECCKM application cursor keys (arrow keys stop working in the shell)
    5: "l",  # DECSCNM reverse video
    6: "l",  # DECOM origin mode
    7: "h",  # DECAWM autowrap
    9: "l",
    1000: "l",
    1001: "l",
    1002: "l",
    1003: "l",  # mouse reporting
    1005: "l",
    1006: "l",
    1015: "l",
    1016: "l",  # mouse report encodings
    1004: "l",  # focus in/out reports
    25: "h",  # DECTCEM cursor visible
    2004: "l",  # bracketed paste
    2026: "l",  # synchronized output (left on, a terminal may stop drawing)
}
_ALT_SCREEN_MODES = (1049, 1047, 47)  # left first, so the others apply to the normal screen
_ANSI_MODE_DEFAULTS = {4: "l", 20: "l"}  # IRM insert, LNM newline


class TerminalFilter:
    """``feed(text)`` returns what is safe to write to the operator's terminal."""

    def __init__(self) -> None:
        self.state = _GROUND
        self._seq: list[str] = []  # the escape/control sequence held back until its final
        self._seq_len = 0
        self._forget_changes()

    def _forget_changes(self) -> None:
        """What the forwarded output changed, for reset_sequence()."""
        self._private_modes: dict[int, str] = {}
        self._ansi_modes: dict[int, str] = {}
        self._alt_screen = False
        self._sgr_dirty = False
        self._scroll_region = False
        self._keypad = False
        self._charsets: set[str] = set()  # "(" / ")" designated something other than ASCII
        self._shifted_out = False

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def feed(self, text: str) -> str:
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            if self.state == _GROUND:
                m = _FAST_RUN.match(text, i)
                if m is not None:
                    run = m.group()
                    self._note_run(run)
                    out.append(run)
                    i = m.end()
                    continue
            self._step(text[i], out)
            i += 1
        return "".join(out)

    def _step(self, ch: str, out: list[str]) -> None:
        """One code point through the state machine (the slow, general path)."""
        code = ord(ch)
        # "Anywhere" transitions: they apply in every state, strings included.
        if ch == _ESC:
            self._start(_ESCAPE, ch)
            return
        if ch == _CAN or ch == _SUB:
            self._drop()
            out.append(ch)  # executed by the terminal, as it would be without the filter
            return
        if 0x80 <= code <= 0x9F:
            self._c1(ch, out)
            return
        state = self.state
        if state == _GROUND:
            self._execute(ch, out)
        elif state == _OSC_STRING:
            if ch == _BEL:  # xterm's OSC terminator
                self.state = _GROUND
        elif state == _STRING:
            pass  # DCS, SOS, PM, APC: everything up to ST, CAN, SUB or ESC is dropped
        elif code < 0x20:
            self._execute(ch, out)  # C0 inside a sequence: executed, the sequence goes on
        elif code == 0x7F or code > 0x9F:
            pass  # ignored inside a sequence
        elif state == _ESCAPE:
            self._escape(ch, out)
        elif state == _ESCAPE_INTERMEDIATE:
            if code <= 0x2F:
                self._hold(ch)
            else:
                self._dispatch(ch, out)
        else:  # _CSI
            if code <= 0x3F:
                self._hold(ch)
            else:
                self._dispatch(ch, out)

    def _execute(self, ch: str, out: list[str]) -> None:
        if ch == "\x0e" or ch == "\x0f":  # SO / SI: G1 / G0 charset
            self._shifted_out = ch == "\x0e"
        out.append(ch)

    def _escape(self, ch: str, out: list[str]) -> None:
        if ch == "[":
            self.state = _CSI
            self._hold(ch)
        elif ch == "]":
            self._drop(_OSC_STRING)
        elif ch in _STRINGS_7BIT:
            self._drop(_STRING)
        elif ch == "\\":
            self._drop()  # ST: ends a string that was dropped; nothing to forward
        elif ord(ch) <= 0x2F:
            self.state = _ESCAPE_INTERMEDIATE
            self._hold(ch)
        else:
            self._dispatch(ch, out)

    def _c1(self, ch: str, out: list[str]) -> None:
        if ch == _C1_CSI:
            self._start(_CSI, ch)
        elif ch == _C1_OSC:
            self._drop(_OSC_STRING)
        elif ch in _C1_STRINGS:
            self._drop(_STRING)
        elif ch == _C1_ST:
            self._drop()
        else:
            self._drop()
            out.append(ch)  # IND, NEL, RI, SS2...: executed

    def _start(self, state: int, ch: str) -> None:
        self.state = state
        self._seq = [ch]
        self._seq_len = 1

    def _hold(self, ch: str) -> None:
        self._seq_len += 1
        if self._seq_len <= MAX_SEQUENCE:
            self._seq.append(ch)

    def _drop(self, state: int = _GROUND) -> None:
        self.state = state
        self._seq = []
        self._seq_len = 0

    def _dispatch(self, final: str, out: list[str]) -> None:
        seq = self._seq
        too_long = self._seq_len + 1 > MAX_SEQUENCE
        csi = self.state == _CSI
        self._drop()
        if too_long:
            return
        text = "".join(seq) + final
        if csi:
            head = _CSI_HEAD.match(text)
            assert head is not None
            self._note_csi(head.group(1), head.group(2), final)
        else:
            self._note_escape(text)
        out.append(text)

    # ----- what the guest changed, so that detaching can undo it -----

    def _note_run(self, run: str) -> None:
        if "\x0e" in run or "\x0f" in run:
            self._shifted_out = run.rfind("\x0e") > run.rfind("\x0f")
        if "\x1b" not in run and "\x9b" not in run:
            return
        for csi in _MODE_CSI.finditer(run):
            self._note_csi(csi.group(1), csi.group(2), csi.group(3))
        sgr = _LAST_SGR.match(run)
        if sgr is not None:
            self._note_csi(sgr.group(1), "", "m")

    def _note_csi(self, params: str, intermediates: str, final: str) -> None:
        if intermediates:
            return
        if final == "m":
            self._sgr_dirty = params not in ("", "0")
        elif final in "hl":
            private = params.startswith("?")
            if not private and params[:1] in ("<", "=", ">"):
                return
            for part in params.lstrip("?").split(";"):
                if not part.isdigit() or len(part) > 5:
                    continue
                mode = int(part)
                if private:
                    if mode in _ALT_SCREEN_MODES:
                        self._alt_screen = final == "h"
                    elif mode in _PRIVATE_MODE_DEFAULTS:
                        self._private_modes[mode] = final
                elif mode in _ANSI_MODE_DEFAULTS:
                    self._ansi_modes[mode] = final
        elif final == "r" and not params.startswith("?"):
            self._scroll_region = params not in ("", ";")

    def _note_escape(self, text: str) -> None:
        if text == "\x1b=":
            self._keypad = True
        elif text == "\x1b>":
            self._keypad = False
        elif len(text) == 3 and text[1] in "()":
            if text[2] == "B":
                self._charsets.discard(text[1])
            else:
                self._charsets.add(text[1])
        elif text == "\x1bc":  # RIS: the terminal is back to its power-on state
            self._forget_changes()

    def reset_sequence(self) -> str:
        """CSI/ESC sequences (never a string) that undo what the forwarded output changed."""
        parts: list[str] = []
        if self._alt_screen:
            parts.append("\x1b[?1049l")
        if self._scroll_region:
            parts.append("\x1b7\x1b[r\x1b8")  # DECSTBM homes the cursor: save and restore it
        for mode, value in sorted(self._private_modes.items()):
            default = _PRIVATE_MODE_DEFAULTS[mode]
            if value != default:
                parts.append(f"\x1b[?{mode}{default}")
        for mode, value in sorted(self._ansi_modes.items()):
            default = _ANSI_MODE_DEFAULTS[mode]
            if value != default:
                parts.append(f"\x1b[{mode}{default}")
        if self._keypad:
            parts.append("\x1b>")
        for which in sorted(self._charsets):
            parts.append(f"\x1b{which}B")
        if self._shifted_out:
            parts.append("\x0f")
        if self._sgr_dirty:
            parts.append("\x1b[0m")
        return "".join(parts)


def bench(megabytes: float = 8.0) -> dict[str, float]:
    """MB/s of ``feed()`` on plain text (a log flood), coloured text (a prompt, ``ls
    --color``: a CSI every 12 characters) and escape-dense hostile output."""
    plain = "[ 1234.567890] web-1 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.0.0.7 DST=10.0.0.1\r\n"
    coloured = "\x1b[1;32madmin@web-1\x1b[0m:\x1b[1;34m~\x1b[0m$ ls -l /var/log/syslog.1 and some text\r\n"
    hostile = "\x1b\x1b]0;x\x07]52;c;aGk=\x07\x1b\x00]2;T\x07\x9d0;t\x9c\x1bPq\x18ok\x1b[1m\x1b(0q\x0e\x0f"
    results: dict[str, float] = {}
    for name, unit in (("plain", plain), ("coloured", coloured), ("hostile", hostile)):
        chunk = unit * max(1, 4096 // len(unit))
        total = int(megabytes * 1e6)
        f = TerminalFilter()
        start = time.perf_counter()
        done = 0
        while done < total:
            f.feed(chunk)
            done += len(chunk)
        results[name] = done / (time.perf_counter() - start) / 1e6
    return results


if __name__ == "__main__":  # python -m vmws.termfilter: the benchmark figures
    for name, rate in bench(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0).items():
        print(f"{name}: {rate:.1f} MB/s (million code points per second)")
