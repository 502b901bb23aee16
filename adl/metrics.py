"""Image and kernel metrics under the conventions of method.md §1."""

from __future__ import annotations

import math
import os

import numpy as np

from adl.errors import AdlError
from adl.imageio import list_images, pair_by_stem, read_image
from adl.progress import progress


def finite_mean(values) -> float:
    """The mean of the finite values: identical image pairs score +inf and are left out (method.md §1);
    +inf when every value is infinite."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.inf


def psnr(pred: np.ndarray, target: np.ndarray, shave: int, *, name: str = "image") -> float:
    """PSNR in dB of two HxWx3 uint8 images after removing ``shave`` pixels at every border."""
    if pred.shape != target.shape:
        raise AdlError(
            f"{name}: size {pred.shape[1]}x{pred.shape[0]} differs from the reference "
            f"{target.shape[1]}x{target.shape[0]}; compare images of the same size"
        )
    if shave < 0 or 2 * shave >= min(pred.shape[:2]):
        raise AdlError(f"{name}: cannot shave {shave} pixels from a {pred.shape[1]}x{pred.shape[0]} image")
    if shave:
        pred = pred[shave:-shave, shave:-shave]
        target = target[shave:-shave, shave:-shave]
    if np.array_equal(pred, target):
        # skimage divides by a zero MSE here and warns; identical images are infinitely close.
        return float("inf")
    # Imported here, as scipy.signal below: skimage.metrics pulls in scipy.stats (~1 s per job).
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(target, pred, data_range=255))


def kernel_similarity(k1: np.ndarray, k2: np.ndarray) -> float:
    """Max over integer shifts of the normalised cross-correlation (Hu & Yang, ECCV 2012).

    Kernels retrieved at a different size or off by a pixel still describe the same blur,
    so the score must not penalise padding or translation; full-mode correlation covers
    every overlap of the two supports.
    """
    a = np.asarray(k1, dtype=np.float64)
    b = np.asarray(k2, dtype=np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        raise AdlError("kernel similarity: a kernel is all zeros")
    # Imported here: scipy.signal costs ~2 s, paid by every trainer and metric job that imports this module.
    from scipy.signal import correlate

    # Direct method: FFT correlation adds roundoff that can push identical kernels above 1.
    return float(correlate(a, b, mode="full", method="direct").max() / norms)


def psnr_folders(
    pred_dir: str | os.PathLike, target_dir: str | os.PathLike, shave: int
) -> list[tuple[str, float]]:
    """(file stem, PSNR) for every image of ``pred_dir`` against the same-named one in ``target_dir``."""
    pairs = pair_by_stem(
        list_images(pred_dir, what="predictions"), list_images(target_dir, what="references"),
        str(pred_dir), str(target_dir),
    )
    return [
        (pred_path.stem, psnr(read_image(pred_path), read_image(target_path), shave, name=str(pred_path)))
        for pred_path, target_path in progress(pairs, desc="PSNR", unit="img")
    ]


SSIM_WINDOW = 7  # scikit-image's default (and smallest usual) window side


def ssim(pred: np.ndarray, target: np.ndarray, shave: int, *, name: str = "image") -> float:
    h, w = target.shape[:2]
    if shave:
        pred, target = pred[shave:-shave, shave:-shave], target[shave:-shave, shave:-shave]
    if min(target.shape[:2]) < SSIM_WINDOW:  # scikit-image would raise a bare ValueError
        raise AdlError(f"{name}: {w}x{h} leaves {target.shape[1]}x{target.shape[0]} after shaving "
                       f"{shave} pixels per border, less than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window; "
                       f"use larger images")
    from skimage.metrics import (
        structural_similarity,  # imported here for the same reason as in psnr
    )

    return float(structural_similarity(target, pred, channel_axis=2, data_range=255))


def psnr_report(pred_dir: str | os.PathLike, target_dir: str | os.PathLike, shave: int, csv_path: str | None = None,
                json_path: str | None = None, tags: dict[str, str] | None = None) -> float:
    """Mean PSNR of two folders paired by name; per-image values to ``csv_path`` and, with the mean,
    the shave and ``tags`` (for `adl table`), to ``json_path``."""
    import csv
    import io
    import json
    import logging

    from adl.atomic import write_text

    rows = psnr_folders(pred_dir, target_dir, shave)
    mean = finite_mean(v for _, v in rows)
    if csv_path:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "psnr"])
        writer.writerows([name, f"{v:.4f}"] for name, v in rows)
        writer.writerow(["mean", f"{mean:.4f}"])
        write_text(csv_path, buf.getvalue())
    if json_path:
        result = {"tags": dict(tags or {}), "psnr": mean, "shave": shave,
                  "per_image": [{"image": name, "psnr": v} for name, v in rows]}
        write_text(json_path, json.dumps(result, indent=2) + "\n")
    infinite = sum(not math.isfinite(v) for _, v in rows)
    if infinite:
        logging.getLogger(__name__).warning("%d identical image pair(s) (infinite PSNR) left out of the mean", infinite)
    return mean
