"""RFB pixel formats (RFC 6143 §7.4): how a colour becomes the bytes of one pixel.

The screen speaks true colour only, at 8, 16 or 32 bits per pixel, with any shifts
and maxima and either byte order; a colour-map format is refused (``FormatError``),
as nothing here keeps a palette for the client.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["FormatError", "PixelFormat", "SERVER_FORMAT", "RGB"]

RGB = tuple[int, int, int]

_STRUCT = struct.Struct(">BBBBHHHBBB3x")


class FormatError(ValueError):
    """A pixel format the screen cannot draw in (the message says why)."""


@dataclass(frozen=True)
class PixelFormat:
    bits_per_pixel: int
    depth: int
    big_endian: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int
    # (fg, bg) -> the 8-pixel strip of each glyph row byte, filled as cells are drawn
    _strips: dict[tuple[RGB, RGB], list[bytes]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: bytes) -> PixelFormat:
        """The 16-byte PIXEL_FORMAT of a SetPixelFormat message, or ``FormatError``."""
        bpp, depth, big, true_colour, rmax, gmax, bmax, rshift, gshift, bshift = _STRUCT.unpack(data)
        if not true_colour:
            raise FormatError("colour-map pixel formats are not supported (true colour only)")
        if bpp not in (8, 16, 32):
            raise FormatError(f"{bpp} bits per pixel is not supported (8, 16 or 32)")
        for name, top, shift in (("red", rmax, rshift), ("green", gmax, gshift), ("blue", bmax, bshift)):
            if top == 0 or (top << shift) >= 1 << bpp:
                raise FormatError(f"{name} max {top} shifted by {shift} does not fit {bpp} bits per pixel")
        return cls(bpp, depth, bool(big), rmax, gmax, bmax, rshift, gshift, bshift)

    def pack(self) -> bytes:
        """The 16 bytes of this format, as ServerInit carries it."""
        return _STRUCT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            1,
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    def pixel(self, rgb: RGB) -> bytes:
        r, g, b = rgb
        value = (
            (r * self.red_max // 255) << self.red_shift
            | (g * self.green_max // 255) << self.green_shift
            | (b * self.blue_max // 255) << self.blue_shift
        )
        return value.to_bytes(self.bytes_per_pixel, "big" if self.big_endian else "little")

    def strips(self, fg: RGB, bg: RGB) -> list[bytes]:
        """For each glyph row byte (bit 0 leftmost), its 8 pixels in these colours."""
        key = (fg, bg)
        strips = self._strips.get(key)
        if strips is None:
            on, off = self.pixel(fg), self.pixel(bg)
            strips = [b"".join(on if bits >> x & 1 else off for x in range(8)) for bits in range(256)]
            if len(self._strips) >= 64:
                self._strips.clear()  # a screen uses a handful of colour pairs: keep it bounded
            self._strips[key] = strips
        return strips


# what ServerInit announces: 32-bit little-endian xRGB, as QEMU's VNC server does
SERVER_FORMAT = PixelFormat(32, 24, False, 255, 255, 255, 16, 8, 0)
