"""Denoising an LR set before G is trained on it (paper §4.7: ADL assumes clean LR; §3.1 drops
eq. 1's noise term because G has no randomness to reproduce it).

``denoise_folder`` turns an LR folder into a folder of denoised PNGs with the same stems and
writes ``denoise.json`` beside them: the options, and each image's noise level as estimated by
scikit-image's ``estimate_sigma`` (wavelet MAD, per channel, in 8-bit levels). The methods are
maintained libraries': BM3D (the ``bm3d`` package), non-local means and wavelet shrinkage
(scikit-image). Each image is written atomically; a rerun skips the images already written and
re-estimates their level (the estimate is deterministic), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

import adl
from adl.atomic import write_text
from adl.choices import DENOISE_METHODS as METHODS
from adl.errors import AdlError
from adl.imageio import list_images, read_image, refuse_same_folder, require_unique_stems, write_png
from adl.progress import progress

log = logging.getLogger(__name__)

RECORD = "denoise.json"


def estimate_levels(image: np.ndarray) -> np.ndarray:
    """Per-channel noise σ of an HxWx3 uint8 image in 8-bit levels (skimage's wavelet MAD estimate)."""
    from skimage.restoration import estimate_sigma

    sigmas = estimate_sigma(image.astype(np.float64) / 255.0, channel_axis=-1, average_sigmas=False)
    return np.asarray(sigmas, dtype=np.float64) * 255.0


def denoise_image(image: np.ndarray, method: str, sigma: float) -> np.ndarray:
    """``image`` (HxWx3 uint8) denoised by ``method`` for noise of σ = ``sigma`` levels, as uint8."""
    x = image.astype(np.float64) / 255.0
    s = max(float(sigma), 1e-3) / 255.0  # σ = 0 would make BM3D divide by zero; 1e-3 levels changes nothing
    if method == "bm3d":
        try:
            import bm3d
        except ImportError:
            raise AdlError("--method bm3d: the bm3d package is not installed; pip install 'adl[denoise]' "
                           "or use --method nl-means") from None
        y = bm3d.bm3d_rgb(x, s)
    elif method == "nl-means":
        from skimage.restoration import denoise_nl_means

        # h = 0.8σ with σ subtracted from the patch distances: scikit-image's recommended setting.
        y = denoise_nl_means(x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1)
    elif method == "wavelet":
        from skimage.restoration import denoise_wavelet

        y = denoise_wavelet(x, sigma=s, channel_axis=-1, convert2ycbcr=True, method="BayesShrink", mode="soft",
                            rescale_sigma=True)
    else:
        raise AdlError(f"--method {method}: choose from {', '.join(METHODS)}")
    return np.clip(np.round(np.asarray(y) * 255.0), 0, 255).astype(np.uint8)


def _check_record(out: Path, options: dict) -> None:
    """A folder denoised under other options is not resumed into: its images would mix two methods."""
    path = out / RECORD
    if not path.exists():
        return
    try:
        earlier = json.loads(path.read_text())["options"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AdlError(f"{path}: unreadable; remove the folder {out} and denoise again") from None
    if earlier != options:
        changed = sorted(k for k in options if earlier.get(k) != options[k])
        raise AdlError(f"--output {out}: denoised earlier with other options ({', '.join(changed)}); "
                       f"use another --output folder")


def denoise_folder(input_dir: str | Path, output_dir: str | Path, method: str = "bm3d",
                   sigma: float | None = None) -> dict:
    """Denoise every image of ``input_dir`` into ``output_dir``/<stem>.png; returns the record written."""
    src, out = Path(input_dir), Path(output_dir)
    refuse_same_folder(src, out)
    if method not in METHODS:
        raise AdlError(f"--method {method}: choose from {', '.join(METHODS)}")
    if sigma is not None and not (np.isfinite(sigma) and sigma >= 0):
        raise AdlError(f"--sigma {sigma}: must be a finite noise level ≥ 0 in 8-bit levels")
    paths = require_unique_stems(list_images(src, what="--input"), "--input")
    options = {"method": method, "sigma": sigma}
    _check_record(out, options)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / RECORD, json.dumps({"options": options, "complete": False}, indent=1) + "\n")
    images = {}
    for path in progress(paths, desc=f"denoise ({method})", unit="img"):
        noisy = read_image(path)
        levels = estimate_levels(noisy)
        used = float(np.mean(levels)) if sigma is None else float(sigma)
        target = out / f"{path.stem}.png"
        if not target.exists():  # written atomically: present means finished
            write_png(target, denoise_image(noisy, method, used))
        images[target.name] = {"source": path.name, "sigma_estimated": [round(float(v), 4) for v in levels],
                               "sigma_used": round(used, 4)}
    record = {"options": options, "complete": True, "adl_version": adl.__version__,
              "estimator": "skimage.restoration.estimate_sigma (wavelet MAD), per channel, 8-bit levels",
              "images": images}
    write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
    return record
