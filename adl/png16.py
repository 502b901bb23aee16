"""Full-depth decoding of 16-bit colour PNGs, which Pillow reads only as their top 8 bits (v >> 8).

Only what Pillow cannot do is done here: zlib inflation and PNG's five scanline filters
(PNG spec §9), on non-interlaced RGB/RGBA 16-bit images. Rows filtered with Average or Paeth
depend on the pixel to their left, so those rows are reconstructed pixel by pixel: slower than
Pillow, and used only for this rare format.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from adl.errors import AdlError

_CHANNELS = {2: 3, 6: 4}  # PNG colour type -> samples per pixel (RGB, RGBA)


def is_16bit_colour_png(img) -> bool:
    """Whether Pillow would truncate this opened (not yet loaded) image."""
    return img.format == "PNG" and bool(img.tile) and img.tile[0][3] in ("RGB;16B", "RGBA;16B")


def read_png16(path: Path) -> np.ndarray:
    """HxWxC uint16 samples of a non-interlaced 16-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise AdlError(f"{path}: no PNG header; replace or remove the file")
    w, h, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in _CHANNELS:
        raise AdlError(f"{path}: not a 16-bit RGB/RGBA PNG")
    if interlace:
        raise AdlError(f"{path}: interlaced 16-bit colour PNG; save it without interlacing (or as 8-bit)")
    bpp = 2 * _CHANNELS[colour]
    stride = w * bpp
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    except zlib.error as exc:
        raise AdlError(f"{path}: cannot read image ({exc}); replace or remove the file") from None
    if raw.size < h * (stride + 1):
        raise AdlError(f"{path}: image data ends early; replace or remove the file")
    rows = raw[: h * (stride + 1)].reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            out[y] = line
        elif kind == 1:  # Sub: a running sum along each byte lane
            out[y] = (np.cumsum(line.reshape(w, bpp).astype(np.int64), axis=0) % 256).astype(np.uint8).ravel()
        elif kind == 2:
            out[y] = line + prior  # uint8 arithmetic wraps mod 256, as the filter does
        elif kind in (3, 4):
            out[y] = _sequential(line, prior, bpp, kind)
        else:
            raise AdlError(f"{path}: unknown PNG filter {kind} in row {y}; replace or remove the file")
        prior = out[y]
    return out.view(">u2").reshape(h, w, _CHANNELS[colour]).astype(np.uint16)


def _sequential(line: np.ndarray, prior: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average (3) or Paeth (4) reconstruction of one row."""
    line, up = line.astype(np.int32), prior.astype(np.int32)
    recon = np.zeros(line.size, dtype=np.int32)
    left = np.zeros(bpp, dtype=np.int32)
    upleft = np.zeros(bpp, dtype=np.int32)
    for x in range(0, line.size, bpp):
        b = up[x : x + bpp]
        if kind == 3:
            predictor = (left + b) // 2
        else:
            p = left + b - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - b), np.abs(p - upleft)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, b, upleft))
        recon[x : x + bpp] = (line[x : x + bpp] + predictor) % 256
        left, upleft = recon[x : x + bpp], b
    return recon.astype(np.uint8)
