"""A small PNG reader and writer (8-bit RGB/RGBA, no interlace): enough to compose an icon.

Stdlib only (zlib, struct), so exporting a connector needs no imaging library.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["Image", "decode", "encode", "icon_on_background"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # PNG colour type -> channels (RGB, RGBA)


@dataclass(frozen=True)
class Image:
    """Pixels as rows of bytes, `channels` bytes per pixel (3 = RGB, 4 = RGBA)."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        start = x * self.channels
        return tuple(self.rows[y][start : start + self.channels])


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    found, at = [], len(_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        found.append((kind, body))
        at += 12 + length
    return found


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(data: bytes) -> Image:
    """The pixels of an 8-bit, non-interlaced RGB or RGBA PNG; ValueError for anything else."""
    chunks = _chunks(data)
    header = dict(chunks)[b"IHDR"]
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError("only 8-bit, non-interlaced RGB or RGBA PNG files are read")
    channels = _CHANNELS[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            predictor = (0, left, up, (left + up) // 2, _paeth(left, up, upper_left))[kind]
            line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return Image(width, height, channels, rows)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def encode(image: Image) -> bytes:
    """`image` as a PNG file (no filtering: icons are small)."""
    colour = {3: 2, 4: 6}[image.channels]
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in image.rows)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.removeprefix("#")
    if len(value) != 6:
        raise ValueError(f"not a #RRGGBB colour: {colour!r}")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def icon_on_background(logo: bytes, background: str, size: int = 230, margin: int = 12) -> bytes:
    """An opaque `size`x`size` RGB PNG: `logo` scaled into the square less `margin` on each
    side, composed over a solid `background` (#RRGGBB) by its alpha channel, so the square
    is solid to its edges wherever the logo is transparent."""
    source = decode(logo)
    fill = _rgb(background)
    inner = size - 2 * margin
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            inside = margin <= x < size - margin and margin <= y < size - margin
            if not inside:
                row += bytes(fill)
                continue
            sx = (x - margin) * source.width // inner
            sy = (y - margin) * source.height // inner
            pixel = source.pixel(sx, sy)
            alpha = pixel[3] if source.channels == 4 else 255
            row += bytes((pixel[i] * alpha + fill[i] * (255 - alpha)) // 255 for i in range(3))
        rows.append(bytes(row))
    return encode(Image(size, size, 3, rows))
