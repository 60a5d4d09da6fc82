"""tty1's VGA text console: an 80x25 ``pyte`` terminal drawn with the bitmap font.

What the guest prints on tty1 is fed to a real VT emulator; each of its 25 rows is
read as a ``Row`` — a tuple of cells already resolved to (character, foreground,
background), bold made bright and reverse video and the cursor (a steady block:
no blinking, nothing drawn depends on the wall clock) swapped in — so two rows that
compare equal are drawn alike, which is all the RFB server needs to find the
lines that changed, or moved.
"""

from __future__ import annotations

import pyte

from simulator.screen.font import CELL_HEIGHT, CELL_WIDTH, glyph
from simulator.screen.pixels import RGB, PixelFormat

__all__ = ["COLUMNS", "LINES", "WIDTH", "HEIGHT", "Cell", "Row", "Terminal", "render_rows"]

COLUMNS = 80
LINES = 25
WIDTH = COLUMNS * CELL_WIDTH  # 640
HEIGHT = LINES * CELL_HEIGHT  # 400

Cell = tuple[str, RGB, RGB]
Row = tuple[Cell, ...]

# the VGA text-mode palette: the eight colours, then their bright variants
_VGA = {
    "black": (0, 0, 0),
    "red": (170, 0, 0),
    "green": (0, 170, 0),
    "brown": (170, 85, 0),
    "blue": (0, 0, 170),
    "magenta": (170, 0, 170),
    "cyan": (0, 170, 170),
    "white": (170, 170, 170),
}
_BRIGHT = {
    "black": (85, 85, 85),
    "red": (255, 85, 85),
    "green": (85, 255, 85),
    "brown": (255, 255, 85),
    "blue": (85, 85, 255),
    "magenta": (255, 85, 255),
    "cyan": (85, 255, 255),
    "white": (255, 255, 255),
}
DEFAULT_FG = _VGA["white"]
DEFAULT_BG = _VGA["black"]


def _colour(name: str, default: RGB, bright: bool) -> RGB:
    if name == "default":
        return _BRIGHT["white"] if bright and default is DEFAULT_FG else default
    if name.startswith(("bright", "bfight")):  # pyte spells bright magenta "bfightmagenta"
        return _BRIGHT.get(name[6:], default)
    if name in _VGA:
        return (_BRIGHT if bright else _VGA)[name]
    try:  # 256-colour and true-colour SGR: six hex digits
        value = int(name, 16)
    except ValueError:
        return default
    return (value >> 16 & 0xFF, value >> 8 & 0xFF, value & 0xFF)


class Terminal:
    """An 80x25 terminal fed with bytes; ``version`` counts the feeds that changed it."""

    def __init__(self) -> None:
        self._screen = pyte.Screen(COLUMNS, LINES)
        self._stream = pyte.ByteStream(self._screen)
        self.version = 0
        self._rows: list[Row] | None = None

    def feed(self, data: bytes) -> None:
        if data:
            self._stream.feed(data)
            self.version += 1
            self._rows = None

    def clear(self) -> None:
        """The machine was reset: the BIOS clears the screen and homes the cursor."""
        self.feed(b"\x1b[0m\x1b[2J\x1b[H")

    def text(self) -> list[str]:
        """The characters on screen, one string of 80 per row (as ``pyte`` displays them)."""
        return list(self._screen.display)

    def rows(self) -> list[Row]:
        rows = self._rows
        if rows is None:
            rows = self._rows = [self._row(y) for y in range(LINES)]
        return rows

    def _row(self, y: int) -> Row:
        screen = self._screen
        line = screen.buffer[y]
        cursor = screen.cursor
        cursor_x = cursor.x if not cursor.hidden and cursor.y == y else -1
        cells = []
        for x in range(COLUMNS):
            char = line[x]
            fg = _colour(char.fg, DEFAULT_FG, char.bold)
            bg = _colour(char.bg, DEFAULT_BG, False)
            if char.reverse != (x == cursor_x):
                fg, bg = bg, fg
            cells.append((char.data, fg, bg))
        return tuple(cells)


def render_rows(rows: list[Row], x: int, width: int, fmt: PixelFormat) -> bytes:
    """The pixels of ``rows`` (text rows, top to bottom) from pixel column ``x`` for
    ``width`` pixels (both multiples of the cell width), in ``fmt``, row-major."""
    first, last = x // CELL_WIDTH, (x + width) // CELL_WIDTH
    out: list[bytes] = []
    for row in rows:
        cells = [(glyph(char), fmt.strips(fg, bg)) for char, fg, bg in row[first:last]]
        for line in range(CELL_HEIGHT):
            out.append(b"".join(strips[rows_of_glyph[line]] for rows_of_glyph, strips in cells))
    return b"".join(out)
