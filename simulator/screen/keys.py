"""RFB key events (X11 keysyms) as the bytes a Linux console sends its tty.

Printable Latin-1 and Unicode keysyms become their UTF-8; Return is CR, BackSpace
DEL, Tab and Escape themselves; the cursor and editing keys the Linux console's
escape sequences; Ctrl with a letter (or ``@[\\]^_?``) its control code; Alt
prefixes ESC, as the console's meta key does. Keys without a meaning on a text
console (function keys, modifiers alone) give nothing.
"""

from __future__ import annotations

__all__ = ["CONTROL", "ALT", "DELETE_KEYS", "key_bytes"]

CONTROL = frozenset({0xFFE3, 0xFFE4})  # Control_L, Control_R
ALT = frozenset({0xFFE9, 0xFFEA, 0xFFE7, 0xFFE8})  # Alt_L, Alt_R, Meta_L, Meta_R
DELETE_KEYS = frozenset({0xFFFF, 0xFF9F})  # Delete, KP_Delete: with Ctrl and Alt, the three-finger salute

_SPECIAL = {
    0xFF08: b"\x7f",  # BackSpace: the console sends DEL
    0xFF09: b"\t",
    0xFF0D: b"\r",  # Return
    0xFF8D: b"\r",  # KP_Enter
    0xFF1B: b"\x1b",
    0xFF50: b"\x1b[1~",  # Home
    0xFF51: b"\x1b[D",
    0xFF52: b"\x1b[A",
    0xFF53: b"\x1b[C",
    0xFF54: b"\x1b[B",
    0xFF55: b"\x1b[5~",  # Page_Up
    0xFF56: b"\x1b[6~",  # Page_Down
    0xFF57: b"\x1b[4~",  # End
    0xFF63: b"\x1b[2~",  # Insert
    0xFFFF: b"\x1b[3~",  # Delete
    0xFF9F: b"\x1b[3~",  # KP_Delete
    0xFFAA: b"*",
    0xFFAB: b"+",
    0xFFAD: b"-",
    0xFFAE: b".",
    0xFFAF: b"/",
    **{0xFFB0 + digit: str(digit).encode() for digit in range(10)},  # KP_0 .. KP_9
}

_CONTROL_PUNCTUATION = {"@": 0x00, " ": 0x00, "[": 0x1B, "\\": 0x1C, "]": 0x1D, "^": 0x1E, "_": 0x1F, "?": 0x7F}


def _char_of(keysym: int) -> str | None:
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x0100_00A0 <= keysym <= 0x0110_FFFF:  # Unicode keysyms: 0x01000000 + the code point
        char = chr(keysym - 0x0100_0000)
        return char if char.isprintable() else None
    return None


def key_bytes(keysym: int, *, control: bool = False, alt: bool = False) -> bytes:
    """What pressing ``keysym`` (with those modifiers held) sends; ``b""`` for nothing."""
    data = _SPECIAL.get(keysym)
    if data is None:
        char = _char_of(keysym)
        if char is None:
            return b""
        if control and char.isascii() and char.isalpha():
            data = bytes((ord(char.lower()) & 0x1F,))
        elif control and char in _CONTROL_PUNCTUATION:
            data = bytes((_CONTROL_PUNCTUATION[char],))
        else:
            data = char.encode("utf-8")
    return b"\x1b" + data if alt else data
