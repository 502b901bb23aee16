"""A small unpaired HR/LR protocol built from scikit-image's bundled photos (no downloads).

It mirrors the DIV2K protocol of method.md §8 at toy scale: disjoint photos for the HR set and
the LR set, and held-out crops for testing, all degraded with one known kernel so that the
learned downsampler can be scored against the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adl.degradation import crop_to_scale, degrade
from adl.imageio import write_png

HR_PHOTOS = ("astronaut", "coffee", "motorcycle_left")
LR_PHOTOS = ("chelsea", "rocket", "motorcycle_right")
TRAIN_FRACTION = 2 / 3  # the left part of each photo trains, the right part tests


def sample_photos() -> dict[str, np.ndarray]:
    from skimage import data

    left, right = data.stereo_motorcycle()[:2]
    photos = {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}
    photos.update(motorcycle_left=left, motorcycle_right=right)
    return {name: np.ascontiguousarray(image[..., :3]) for name, image in photos.items()}


def write_sample_protocol(output: str | Path, kernel: np.ndarray, scale: int) -> dict[str, Path]:
    """Write hr/, lr/, test_hr/ and test_lr/ under ``output``; returns the four folders.

    lr/ holds (HR ∗ k)↓s of photos that are not in hr/; test_lr/ is the true LR of test_hr/.
    """
    output = Path(output)
    folders = {name: output / name for name in ("hr", "lr", "test_hr", "test_lr")}
    for name, photo in sample_photos().items():
        cut = int(photo.shape[1] * TRAIN_FRACTION) // (4 * scale) * (4 * scale)
        train, test = crop_to_scale(photo[:, :cut], scale), crop_to_scale(photo[:, cut:], scale)
        if name in HR_PHOTOS:
            write_png(folders["hr"] / f"{name}.png", train)
        else:
            write_png(folders["lr"] / f"{name}.png", degrade(train, kernel, scale))
        write_png(folders["test_hr"] / f"{name}.png", test)
        write_png(folders["test_lr"] / f"{name}.png", degrade(test, kernel, scale))
    return folders
