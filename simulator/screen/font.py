"""The screen's bitmap font, and the reader that turns a rendered framebuffer back into text.

The glyphs are ``font8x8`` by Daniel Hepper, after Marcel Sondaar's and IBM's VGA
fonts, all three in the public domain: U+0020-U+007E (``font8x8_basic``) and
U+00A0-U+00FF (``font8x8_ext_latin``), each 8x8 glyph doubled vertically into a VGA
text cell of 8x16. Three glyphs were changed so that no two printable characters
look alike (the reader could not tell them apart): ``|`` is a solid bar beside the
broken ``¦``, and ``ª`` and ``º`` are underlined as on code page 437. Characters
outside the font are drawn as a box, ``REPLACEMENT``, read back as U+FFFD.

Each row is one byte, bit 0 the leftmost pixel.
"""

from __future__ import annotations

__all__ = ["CELL_WIDTH", "CELL_HEIGHT", "REPLACEMENT", "glyph", "read_text", "font_chars"]

CELL_WIDTH = 8
CELL_HEIGHT = 16

Glyph = tuple[int, ...]  # CELL_HEIGHT rows, bit 0 the leftmost pixel

# 8 glyphs a line, 16 hex digits (8 rows of 8 pixels) each, from the code point in the comment
_BASIC = (
    "0000000000000000 183C3C1818001800 3636000000000000 36367F367F363600 0C3E031E301F0C00 006333180C666300 1C361C6E3B336E00 0606030000000000",  # U+0020
    "180C0606060C1800 060C1818180C0600 00663CFF3C660000 000C0C3F0C0C0000 00000000000C0C06 0000003F00000000 00000000000C0C00 6030180C06030100",  # U+0028
    "3E63737B6F673E00 0C0E0C0C0C0C3F00 1E33301C06333F00 1E33301C30331E00 383C36337F307800 3F031F3030331E00 1C06031F33331E00 3F3330180C0C0C00",  # U+0030
    "1E33331E33331E00 1E33333E30180E00 000C0C00000C0C00 000C0C00000C0C06 180C0603060C1800 00003F00003F0000 060C1830180C0600 1E3330180C000C00",  # U+0038
    "3E637B7B7B031E00 0C1E33333F333300 3F66663E66663F00 3C66030303663C00 1F36666666361F00 7F46161E16467F00 7F46161E16060F00 3C66030373667C00",  # U+0040
    "3333333F33333300 1E0C0C0C0C0C1E00 7830303033331E00 6766361E36666700 0F06060646667F00 63777F7F6B636300 63676F7B73636300 1C36636363361C00",  # U+0048
    "3F66663E06060F00 1E3333333B1E3800 3F66663E36666700 1E33070E38331E00 3F2D0C0C0C0C1E00 3333333333333F00 33333333331E0C00 6363636B7F776300",  # U+0050
    "6363361C1C366300 3333331E0C0C1E00 7F6331184C667F00 1E06060606061E00 03060C1830604000 1E18181818181E00 081C366300000000 00000000000000FF",  # U+0058
    "0C0C180000000000 00001E303E336E00 0706063E66663B00 00001E3303331E00 3830303E33336E00 00001E333F031E00 1C36060F06060F00 00006E33333E301F",  # U+0060
    "0706366E66666700 0C000E0C0C0C1E00 300030303033331E 070666361E366700 0E0C0C0C0C0C1E00 0000337F7F6B6300 00001F3333333300 00001E3333331E00",  # U+0068
    "00003B66663E060F 00006E33333E3078 00003B6E66060F00 00003E031E301F00 080C3E0C0C2C1800 0000333333336E00 00003333331E0C00 0000636B7F7F3600",  # U+0070
    "000063361C366300 00003333333E301F 00003F190C263F00 380C0C070C0C3800 1818181818181800 070C0C380C0C0700 6E3B000000000000",  # U+0078
)
_LATIN = (
    "0000000000000000 1818001818181800 18187E03037E1818 1C36260F06673F00 0000633E363E6300 33331E3F0C3F0C0C 1818180018181800 7CC61C36361C331E",  # U+00A0
    "3300000000000000 3C4299858599423C 3C36367C007E0000 00CC663366CC0000 0000003F30300000 0000000000000000 3C429DA59DA5423C 7E00000000000000",  # U+00A8
    "1C36361C00000000 18187E1818007E00 1C30180C3C000000 1C3018301C000000 180C000000000000 00006666663E0603 FEDBDBDED8D8D800 0000001818000000",  # U+00B0
    "000000000018301E 080C081C00000000 1C36361C003E0000 003366CC66330000 C36333BDECF6F303 C363337BCC6633F0 03C463B4DBACE680 0C000C0603331E00",  # U+00B8
    "07001C36637F6300 70001C36637F6300 1C36003E637F6300 6E3B003E637F6300 631C36637F636300 0C0C001E333F3300 7C36337F33337300 1E3303331E18301E",  # U+00C0
    "07003F061E063F00 38003F061E063F00 0C123F061E063F00 36003F061E063F00 07001E0C0C0C1E00 38001E0C0C0C1E00 0C12001E0C0C1E00 33001E0C0C0C1E00",  # U+00C8
    "3F666F6F66663F00 3F0033373F3B3300 0E00183C663C1800 7000183C663C1800 3C66183C663C1800 6E3B003E63633E00 C3183C66663C1800 00361C081C360000",  # U+00D0
    "5C36737B6F361D00 0E00666666663C00 7000666666663C00 3C66006666663C00 3300333333331E00 700066663C181800 0F063E66663E060F 001E331F331F0303",  # U+00D8
    "07001E303E337E00 38001E303E337E00 7EC33C607C66FC00 6E3B1E303E337E00 33001E303E337E00 0C0C1E303E337E00 0000FE30FE33FE00 00001E03031E301C",  # U+00E0
    "07001E333F031E00 38001E333F031E00 7EC33C667E063C00 33001E333F031E00 07000E0C0C0C1E00 1C000E0C0C0C1E00 3E631C1818183C00 33000E0C0C0C1E00",  # U+00E8
    "1B0E1B303E331E00 001F001F33333300 0007001E33331E00 0038001E33331E00 1E33001E33331E00 6E3B001E33331E00 0033001E33331E00 1818007E00181800",  # U+00F0
    "00603C767E6E3C06 0007003333337E00 0038003333337E00 1E33003333337E00 0033003333337E00 00380033333E301F 0000063E663E0600 00330033333E301F",  # U+00F8
)


def _doubled(hex_rows: str) -> Glyph:
    rows = bytes.fromhex(hex_rows)
    return tuple(row for row in rows for _ in range(2))


def _table(first: int, data: tuple[str, ...]) -> dict[str, Glyph]:
    glyphs = " ".join(data).split()
    return {chr(first + i): _doubled(hex_rows) for i, hex_rows in enumerate(glyphs)}


_GLYPHS: dict[str, Glyph] = {**_table(0x20, _BASIC), **_table(0xA0, _LATIN)}
REPLACEMENT: Glyph = _doubled("7E4242424242427E")
_BLANK = _GLYPHS[" "]

# glyph -> character for the reader; the first character wins (U+00A0 and U+00AD
# look like a space, and are not printable anyway)
_BY_GLYPH: dict[Glyph, str] = {}
for _char, _glyph in _GLYPHS.items():
    _BY_GLYPH.setdefault(_glyph, _char)
_BY_GLYPH[REPLACEMENT] = "\ufffd"


def glyph(char: str) -> Glyph:
    """The glyph drawn for ``char`` (a box for anything the font lacks)."""
    if char in ("", " "):
        return _BLANK
    return _GLYPHS.get(char, REPLACEMENT)


def font_chars() -> list[str]:
    """Every printable character the font draws."""
    return [char for char in _GLYPHS if char.isprintable()]


def read_text(framebuffer: bytes | bytearray, width: int, height: int, bytes_per_pixel: int = 4) -> list[str]:
    """The text a framebuffer shows, one string per row of cells (``width // 8``
    characters each, ``height // 16`` rows), matching each cell against the font.

    A cell holds two colours at most: the pixels equal to its top-left one are either
    the background (the usual case) or the glyph (reverse video, the cursor), so both
    readings are tried. A cell matching no glyph reads as U+FFFD.
    """
    bpp = bytes_per_pixel
    stride = width * bpp
    cell_bytes = CELL_WIDTH * bpp
    lines = []
    for row in range(height // CELL_HEIGHT):
        chars = []
        for column in range(width // CELL_WIDTH):
            origin = row * CELL_HEIGHT * stride + column * cell_bytes
            reference = framebuffer[origin : origin + bpp]
            mask = []
            for line in range(CELL_HEIGHT):
                start = origin + line * stride
                pixels = framebuffer[start : start + cell_bytes]
                bits = 0
                for x in range(CELL_WIDTH):
                    if pixels[x * bpp : (x + 1) * bpp] == reference:
                        bits |= 1 << x
                mask.append(bits)
            char = _BY_GLYPH.get(tuple(bits ^ 0xFF for bits in mask))  # the reference is the background
            if char is None:
                char = _BY_GLYPH.get(tuple(mask), "\ufffd")  # the reference is the glyph's colour
            chars.append(char)
        lines.append("".join(chars))
    return lines
