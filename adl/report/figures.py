"""Report figures: true beside retrieved kernels (paper Fig. 5/7), training curves, LR/SR/HR crops.

The kernel and crop figures are plain pixel arrays (PIL only); the curves need matplotlib, the
``workflow`` extra, and use its Agg canvas without pyplot's global state.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adl.atomic import atomic_path
from adl.errors import AdlError
from adl.kernels import kernel_picture

GAP = 8  # white pixels between panels
HEADER = 20  # height of the caption strip of a labelled kernel figure
WHITE = 255


def pad_to(kernel: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre ``kernel`` on a zero canvas (an odd margin puts the extra row/column at the bottom/right)."""
    h, w = kernel.shape
    top, left = (height - h) // 2, (width - w) // 2
    canvas = np.zeros((height, width), dtype=np.float64)
    canvas[top : top + h, left : left + w] = kernel
    return canvas


def _hstack(panels: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), WHITE, dtype=np.uint8)
    parts = [panels[0]]
    for panel in panels[1:]:
        parts += [spacer, panel]
    return np.concatenate(parts, axis=1)


def kernels_figure(true: np.ndarray, retrieved: np.ndarray, cell: int = 16, label: str | None = None) -> np.ndarray:
    """True (left) and retrieved (right) kernel, each on its own colour scale, at one common size.

    The smaller kernel is centred in zeros to the larger one's size, so both panels are
    max(K) × ``cell`` pixels square; a label adds a caption strip of ``HEADER`` pixels on top.
    """
    height = max(true.shape[0], retrieved.shape[0])
    width = max(true.shape[1], retrieved.shape[1])
    strip = _hstack([kernel_picture(pad_to(k, height, width), cell) for k in (true, retrieved)])
    if not label:
        return strip
    canvas = Image.new("RGB", (strip.shape[1], strip.shape[0] + HEADER), (WHITE,) * 3)
    canvas.paste(Image.fromarray(strip), (0, HEADER))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((2, 3), f"{label}: true", fill=(0, 0, 0), font=font)
    draw.text((strip.shape[1] // 2 + GAP // 2 + 2, 3), "retrieved", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _pair_scale(lr: np.ndarray, hr: np.ndarray, lr_name: str, hr_name: str) -> int:
    (lh, lw), (hh, hw) = lr.shape[:2], hr.shape[:2]
    scale = hh // lh if lh else 0
    if scale < 1 or hh // scale != lh or hw // scale != lw:
        raise AdlError(f"{lr_name}: LR size {lw}x{lh} is not HR {hr_name} ({hw}x{hh}) divided by a whole scale")
    return scale


def crop_box(shape: tuple[int, ...], size: int, at: tuple[int, int] | None, scale: int) -> tuple[int, int]:
    """Top-left corner of the crop: ``at`` as given, or the centre snapped to the LR grid."""
    h, w = shape[:2]
    if at is None:
        return ((h - size) // 2) // scale * scale, ((w - size) // 2) // scale * scale
    y, x = at
    if y < 0 or x < 0 or y + size > h or x + size > w:
        raise AdlError(f"--at {y},{x} with --size {size}: the crop leaves the {w}x{h} image; "
                       f"use 0 ≤ Y ≤ {h - size} and 0 ≤ X ≤ {w - size}")
    return y, x


def crops_figure(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, size: int | None = None,
                 at: list[tuple[int, int]] | None = None, names: tuple[str, str, str] = ("--lr", "--sr", "--hr")
                 ) -> np.ndarray:
    """One row per crop position: LR (nearest-upscaled) | SR | HR of the same size×size HR region.

    HR is cropped at the bottom/right to a multiple of the scale, as evaluate-sr does; SR must then
    have HR's size. ``size`` None means 96 pixels, or the image's smaller side if that is less.
    """
    lr_name, sr_name, hr_name = names
    scale = _pair_scale(lr, hr, lr_name, hr_name)
    hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
    if sr.shape != hr.shape:
        raise AdlError(f"{sr_name}: SR size {sr.shape[1]}x{sr.shape[0]} differs from HR {hr_name} "
                       f"({hr.shape[1]}x{hr.shape[0]} after cropping to ×{scale})")
    if size is None:
        size = min(96, *hr.shape[:2])
    elif size > min(hr.shape[:2]):
        raise AdlError(f"--size {size}: larger than the {hr.shape[1]}x{hr.shape[0]} HR image")
    upscaled = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    rows = []
    for point in at or [None]:
        y, x = crop_box(hr.shape, size, point, scale)
        rows.append(_hstack([img[y : y + size, x : x + size] for img in (upscaled, sr, hr)]))
    spacer = np.full((GAP, rows[0].shape[1], 3), WHITE, dtype=np.uint8)
    parts = [rows[0]]
    for row in rows[1:]:
        parts += [spacer, row]
    return np.concatenate(parts, axis=0)


# -- training curves -----------------------------------------------------------------------------
SKIPPED_COLUMNS = ("iteration", "seconds")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_log(path: str | os.PathLike) -> dict[str, tuple[list[float], list[float]]]:
    """Numeric column -> (iterations, values) of one log.csv; blank cells (e.g. val_psnr) are left out."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise AdlError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AdlError(f"{path}: not a readable log.csv ({exc})") from None
    if not rows or "iteration" not in rows[0]:
        raise AdlError(f"{path}: no rows with an 'iteration' column; pass the log.csv of a run that has logged")
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name in rows[0]:
        if name in SKIPPED_COLUMNS or name is None:
            continue
        cells = [(r["iteration"], r[name]) for r in rows if r.get(name) not in (None, "")]
        values = [(_number(i), _number(v)) for i, v in cells]
        if not values or any(v is None or i is None for i, v in values):
            continue  # a text column (data_term) or one never filled in
        series[name] = ([i for i, _ in values], [v for _, v in values])
    return series


def _data_term(log_path: Path) -> str | None:
    """The data term a downsampler run folder's config.json records beside its log, if any."""
    try:
        options = json.loads((log_path.parent / "config.json").read_text()).get("options", {})
    except (OSError, ValueError, AttributeError):
        return None
    term = options.get("data_loss") if isinstance(options, dict) else None
    return term if isinstance(term, str) else None


def legend_names(paths: list[Path]) -> list[str]:
    """Each run's data term (``adl``) where every log has a distinct one; otherwise each file's parent
    folder name, with more parent folders where that alone is ambiguous."""
    terms = [_data_term(Path(p)) for p in paths]
    if None not in terms and len(set(terms)) == len(terms):
        return terms
    parts = [Path(os.path.abspath(p)).parent.parts for p in paths]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
            return names
        depth += 1


def curves_figure(logs: list[str | os.PathLike], output: str | os.PathLike, columns_per_row: int = 3) -> list[str]:
    """One subplot per numeric column (x = iteration), one line per log; returns the columns drawn."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AdlError("figure curves needs matplotlib; install it with: pip install 'adl[workflow]'") from None
    paths = [Path(p) for p in logs]
    data = [read_log(p) for p in paths]
    columns = list(dict.fromkeys(name for series in data for name in series))
    if not columns:
        raise AdlError(f"{paths[0]}: no numeric columns to plot besides iteration and seconds")
    ncols = min(columns_per_row, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = Figure(figsize=(4 * ncols, 3 * nrows), dpi=100, layout="constrained")
    names = legend_names(paths)
    for index, column in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        for number, (name, series) in enumerate(zip(names, data)):
            if column in series:  # a file keeps its colour in every subplot
                x, y = series[column]
                ax.plot(x, y, label=name, color=f"C{number % 10}", marker="o" if len(x) < 30 else None,
                        markersize=3)
        ax.set_title(column)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    return columns
