"""Keep guest output from reprogramming the operator's own terminal.

A guest can print escape sequences that retitle the local terminal, write to its
clipboard or answer-back (OSC), or load fonts and keys (DCS, plus SOS/PM/APC strings).
``TerminalFilter`` removes those string sequences, also when split across chunks, and
passes everything else (colours, cursor movement) through untouched.
"""

from __future__ import annotations

__all__ = ["TerminalFilter"]

_ESC = "\x1b"
# Introducers of control *strings*: ESC + one of these, or the C1 code points.
_STRING_STARTS_7BIT = frozenset("]PX^_")
_STRING_STARTS_C1 = frozenset("\x9d\x90\x98\x9e\x9f")
_BEL = "\x07"
_ST_C1 = "\x9c"


class TerminalFilter:
    def __init__(self) -> None:
        self._in_string = False
        self._pending_esc = False  # a chunk ended on ESC

    def feed(self, text: str) -> str:
        out: list[str] = []
        i = 0
        n = len(text)
        if self._pending_esc:
            self._pending_esc = False
            text = _ESC + text
            n = len(text)
        while i < n:
            ch = text[i]
            if self._in_string:
                # A string ends with BEL (OSC only, but harmless to accept), ST = ESC \ or C1 ST.
                if ch == _BEL or ch == _ST_C1:
                    self._in_string = False
                elif ch == _ESC:
                    if i + 1 == n:
                        self._pending_esc = True
                    elif text[i + 1] == "\\":
                        self._in_string = False
                        i += 1
                i += 1
                continue
            if ch == _ESC:
                if i + 1 == n:
                    self._pending_esc = True
                    i += 1
                    continue
                if text[i + 1] in _STRING_STARTS_7BIT:
                    self._in_string = True
                    i += 2
                    continue
            elif ch in _STRING_STARTS_C1:
                self._in_string = True
                i += 1
                continue
            out.append(ch)
            i += 1
        return "".join(out)
