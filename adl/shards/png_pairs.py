"""Verification of `adl generate --format png` output: BasicSR-style hr/ and lr/ folders and meta_info.txt."""

from __future__ import annotations

import re
from pathlib import Path

from adl.errors import AdlError
from adl.data.jpeg import decode_jpeg
from adl.imageio import read_image
from adl.shards.finish import JPEG_FOLDER

_META_LINE = re.compile(r"^(?P<name>[^ ]+\.png) \((?P<h>\d+),(?P<w>\d+),3\)$")


def verify_png_pairs(folder: Path, manifest: dict) -> None:
    """Every listed pair decodes, LR is HR/s in both sides, the counts agree, no stray files: else AdlError."""
    s, patch = manifest["scale"], manifest["options"]["patch"]
    meta = folder / manifest.get("meta_info", "meta_info.txt")
    try:
        lines = meta.read_text().splitlines()
    except OSError:
        raise AdlError(f"{meta}: missing or unreadable; regenerate the folder with adl generate") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        match = _META_LINE.match(line)
        if not match:
            raise AdlError(f"{meta}: line {number} is not '<name>.png (H,W,3)'; regenerate the folder")
        pairs.append((match["name"], int(match["h"]), int(match["w"])))
    counts = {"pairs": manifest.get("pairs"), "total_samples": manifest["total_samples"]}
    for key, value in counts.items():
        if value != len(pairs):
            raise AdlError(f"{folder / 'manifest.json'}: {key} is {value}, {meta.name} lists {len(pairs)} pair(s); "
                           f"regenerate the folder")
    names = {name for name, _, _ in pairs}
    # With --jpeg-like, lr_jpeg/<stem>.jpg carries the LR set's tables and lr/<stem>.png its decoded pixels.
    jpegs = {Path(n).with_suffix(".jpg").name for n in names} if "jpeg" in manifest else set()
    for side, listed, pattern in (("hr", names, "*.png"), ("lr", names, "*.png"), (JPEG_FOLDER, jpegs, "*.jpg")):
        stray = sorted(p.name for p in (folder / side).glob(pattern) if p.name not in listed)
        if stray:
            raise AdlError(f"{folder / side / stray[0]}: not listed in {meta.name} ({len(stray)} such file(s)); "
                           f"remove it or regenerate the folder")
    for name, h, w in pairs:
        hr, lr = read_image(folder / "hr" / name), read_image(folder / "lr" / name)
        if jpegs:
            _check_jpeg(folder / JPEG_FOLDER / Path(name).with_suffix(".jpg").name, lr, folder / "lr" / name)
        if hr.shape != (h, w, 3) or (patch is not None and (h, w) != (patch, patch)):
            raise AdlError(f"{folder / 'hr' / name}: {hr.shape[1]}x{hr.shape[0]}, {meta.name} says {w}x{h}"
                           + (f" and the patch is {patch}" if patch is not None else "") + "; regenerate the folder")
        if lr.shape != (h // s, w // s, 3) or h % s or w % s:
            raise AdlError(f"{folder / 'lr' / name}: {lr.shape[1]}x{lr.shape[0]}, not its HR {w}x{h} divided by "
                           f"the scale {s}; regenerate the folder")


def _check_jpeg(path: Path, lr, png: Path) -> None:
    """The JPEG exists and decodes to exactly the pixels of its PNG."""
    try:
        pixels = decode_jpeg(path.read_bytes())
    except (OSError, ValueError, SyntaxError) as exc:
        raise AdlError(f"{path}: missing or not a readable JPEG ({type(exc).__name__}); regenerate the folder") from None
    if pixels.shape != lr.shape or (pixels != lr).any():
        raise AdlError(f"{png}: its pixels differ from {path} decoded; regenerate the folder")
