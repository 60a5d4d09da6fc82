"""The screen's font, terminal, pixel formats and keys, one module at a time."""

from __future__ import annotations

import struct

import pytest

from simulator.screen.font import CELL_HEIGHT, REPLACEMENT, font_chars, glyph, read_text
from simulator.screen.keys import key_bytes
from simulator.screen.pixels import FormatError, PixelFormat
from simulator.screen.terminal import HEIGHT, WIDTH, Terminal, render_rows
from tests.rfb_client import PIXEL_FORMAT

CLIENT_FORMAT = PixelFormat.parse(PIXEL_FORMAT)  # the tests' RFB client's: red in the low byte


def draw(terminal: Terminal) -> bytes:
    return render_rows(terminal.rows(), 0, WIDTH, CLIENT_FORMAT)


def test_every_printable_character_of_the_font_is_read_back_as_itself() -> None:
    chars = font_chars()
    assert len(chars) == 95 + 94  # ASCII and Latin-1 (U+00A0 and U+00AD are not printable)
    terminal = Terminal()
    text = "".join(chars)
    terminal.feed("\r\n".join(text[i : i + 80] for i in range(0, len(text), 80)).encode())
    assert read_text(draw(terminal), WIDTH, HEIGHT) == terminal.text()
    assert "".join(line.rstrip() for line in read_text(draw(terminal), WIDTH, HEIGHT)).startswith(text)


def test_no_two_glyphs_nor_a_glyph_and_another_s_inverse_look_alike() -> None:
    glyphs = [glyph(char) for char in font_chars()] + [REPLACEMENT]
    assert len(set(glyphs)) == len(glyphs)
    inverses = {tuple(row ^ 0xFF for row in g) for g in glyphs}
    assert not inverses & set(glyphs)
    assert all(len(g) == CELL_HEIGHT for g in glyphs)


def test_colours_bold_reverse_video_and_the_cursor_read_back_as_plain_text() -> None:
    terminal = Terminal()
    terminal.feed(b"\x1b[1;31mred\x1b[0m \x1b[7mreverse\x1b[0m \x1b[42;30mgreen\x1b[0m \x1b[38;5;208m256\x1b[0m x")
    lines = read_text(draw(terminal), WIDTH, HEIGHT)
    assert lines[0].rstrip() == "red reverse green 256 x"
    assert lines == terminal.text()


def test_characters_outside_the_font_are_a_box_read_as_u_fffd() -> None:
    terminal = Terminal()
    terminal.feed("a€b".encode())
    assert read_text(draw(terminal), WIDTH, HEIGHT)[0].rstrip() == "a\ufffdb"


def test_hostile_bytes_on_tty1_are_drawn_not_obeyed_beyond_the_screen() -> None:
    terminal = Terminal()
    terminal.feed(b"\xff\xfe\x1b[999999;999999H\x1b]0;title\x07\x1b[99999Mok")
    lines = read_text(draw(terminal), WIDTH, HEIGHT)
    assert len(lines) == 25 and all(len(line) == 80 for line in lines)
    assert any("ok" in line for line in lines)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((32, 24, 0, 0, 255, 255, 255, 0, 8, 16), "colour-map pixel formats are not supported"),
        ((24, 24, 0, 1, 255, 255, 255, 0, 8, 16), "24 bits per pixel is not supported"),
        ((16, 16, 0, 1, 255, 255, 255, 0, 8, 16), "blue max 255 shifted by 16 does not fit 16 bits per pixel"),
        ((32, 24, 0, 1, 0, 255, 255, 0, 8, 16), "red max 0"),
    ],
)
def test_pixel_formats_the_screen_cannot_draw_are_refused_by_name(fields: tuple[int, ...], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        PixelFormat.parse(struct.pack(">BBBBHHHBBB3x", *fields))


def test_a_pixel_in_either_byte_order_and_any_shifts() -> None:
    big_bgr = PixelFormat.parse(struct.pack(">BBBBHHHBBB3x", 32, 24, 1, 1, 255, 255, 255, 0, 8, 16))
    assert big_bgr.pixel((0x11, 0x22, 0x33)) == bytes((0, 0x33, 0x22, 0x11))
    rgb565 = PixelFormat.parse(struct.pack(">BBBBHHHBBB3x", 16, 16, 0, 1, 31, 63, 31, 11, 5, 0))
    assert rgb565.pixel((255, 0, 0)) == (0xF800).to_bytes(2, "little")
    assert CLIENT_FORMAT.pixel((1, 2, 3)) == bytes((1, 2, 3, 0))


@pytest.mark.parametrize(
    ("keysym", "control", "alt", "sent"),
    [
        (ord("a"), False, False, b"a"),
        (ord("A"), False, False, b"A"),
        (0xE9, False, False, "é".encode()),
        (0x01000000 + 0x20AC, False, False, "€".encode()),
        (0xFF0D, False, False, b"\r"),
        (0xFF08, False, False, b"\x7f"),
        (0xFF09, False, False, b"\t"),
        (0xFF1B, False, False, b"\x1b"),
        (0xFF52, False, False, b"\x1b[A"),
        (0xFF54, False, False, b"\x1b[B"),
        (0xFF53, False, False, b"\x1b[C"),
        (0xFF51, False, False, b"\x1b[D"),
        (ord("c"), True, False, b"\x03"),
        (ord("D"), True, False, b"\x04"),
        (ord("["), True, False, b"\x1b"),
        (ord("x"), False, True, b"\x1bx"),
        (0xFFBE, False, False, b""),  # F1: nothing on a text console here
        (0xFFE1, False, False, b""),  # Shift alone
        (0x01000000 + 0x9B, False, False, b""),  # a C1 control (CSI) as a Unicode keysym
    ],
)
def test_keysyms_become_what_a_linux_console_sends(keysym: int, control: bool, alt: bool, sent: bytes) -> None:
    assert key_bytes(keysym, control=control, alt=alt) == sent
