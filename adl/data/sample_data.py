"""A small unpaired HR/LR protocol built from photos bundled with installed packages (no downloads).

Three photo sets (PHOTO_SETS, PHOTO_SET_DOC): scikit-image's colour photos (the default), a smooth
set and a varied set, so that a setting tuned on one set can be checked on the others.

It mirrors the DIV2K protocol of method.md §8 at toy scale: disjoint photos for the HR set and
the LR set, and held-out crops for testing, all degraded with one known kernel so that the
learned downsampler can be scored against the truth. sample_split chooses the crops (``adl split
--protocol sample``); write_sample_protocol also degrades them (``adl sample-data``).

With ``tile``, the training parts of all six photos are cut into tiles that a seeded coin assigns
to the HR side or the LR side. The two sides then share one content distribution, as DIV2K's
400 + 400 images do, while no pixel is on both sides; with three photos a side, the discriminator
tells the sides apart by their subjects instead of their blur (docs/fidelity.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adl.choices import PHOTO_SETS
from adl.errors import AdlError
from adl.imageio import crop_to_scale, write_png

# Each set: {name: (loader, HR side without --tile)}. Provenance and licences: docs/fidelity.md,
# "Photo sets". Every photo ships with an installed package; nothing is downloaded.
PHOTO_SET_DOC = {
    "skimage": "scikit-image's colour photos (astronaut, coffee, chelsea, rocket, the stereo motorcycle pair)",
    "smooth": "large flat regions: scikit-image's retina fundus photo, moon and cell (grey, stacked to RGB)",
    "varied": "scikit-image's camera, coins, hubble_deep_field, immunohistochemistry, brick and gravel, and "
              "matplotlib's grace_hopper",
}
HR_PHOTOS = ("astronaut", "coffee", "motorcycle_left")
LR_PHOTOS = ("chelsea", "rocket", "motorcycle_right")
SMOOTH_HR = ("retina",)
VARIED_HR = ("camera", "hubble_deep_field", "brick", "grace_hopper")
TRAIN_FRACTION = 2 / 3  # the left part of each photo trains, the right part tests


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return np.ascontiguousarray(image.astype(np.uint8))


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def sample_photos(photos: str = "skimage") -> dict[str, np.ndarray]:
    """The set's photos as HxWx3 uint8, in a fixed order (the tile coin depends on it)."""
    from skimage import data

    if photos not in PHOTO_SETS:
        raise AdlError(f"--photos {photos}: expected one of {', '.join(PHOTO_SETS)}")
    if photos == "skimage":
        left, right = data.stereo_motorcycle()[:2]
        found = {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}
        found.update(motorcycle_left=left, motorcycle_right=right)
    elif photos == "smooth":
        found = {name: getattr(data, name)() for name in ("retina", "moon", "cell")}
    else:
        names = ("camera", "coins", "hubble_deep_field", "immunohistochemistry", "brick", "gravel")
        found = {name: getattr(data, name)() for name in names}
        found["grace_hopper"] = _grace_hopper()
    return {name: _rgb(image) for name, image in found.items()}


def hr_side(photos: str) -> tuple[str, ...]:
    """The photos on the HR side without --tile; the others are the LR side."""
    return {"skimage": HR_PHOTOS, "smooth": SMOOTH_HR, "varied": VARIED_HR}[photos]


def sample_split(multiple: int, tile: int | None = None, seed: int = 0,
                 photos: str = "skimage") -> dict[str, dict[str, np.ndarray]]:
    """The protocol's parts as {part: {name: crop}}, every crop's sides a multiple of ``multiple``.

    ``photos`` names the set (PHOTO_SETS). hr: the left parts of the set's HR photos (hr_side); lr_source: the left parts of the other photos, which become the
    LR set once degraded; test_hr: the right parts of all photos. ``adl split`` uses multiple 4, so
    that ×2 and ×4 both divide the crops; write_sample_protocol uses its scale, as it always has.
    With ``tile``, hr and lr_source instead hold the tile×tile tiles of every photo's left part,
    each side chosen by a coin seeded with ``seed`` (named ``<photo>-<y>-<x>``).
    """
    if tile is not None and (tile < 1 or tile % multiple):
        raise AdlError(f"--tile {tile}: must be a positive multiple of {multiple}")
    parts: dict[str, dict[str, np.ndarray]] = {"hr": {}, "lr_source": {}, "test_hr": {}}
    coin = np.random.default_rng(seed)
    hr_names = hr_side(photos) if photos in PHOTO_SETS else ()
    for name, photo in sample_photos(photos).items():
        # The cut sits on a multiple of 4·multiple, where it always was, so that the outputs of
        # write_sample_protocol (the demo's and the tests' data) did not move when this was factored out.
        cut = int(photo.shape[1] * TRAIN_FRACTION) // (4 * multiple) * (4 * multiple)
        train = crop_to_scale(photo[:, :cut], multiple)
        parts["test_hr"][name] = crop_to_scale(photo[:, cut:], multiple)
        if tile is None:
            parts["hr" if name in hr_names else "lr_source"][name] = train
            continue
        for y in range(0, train.shape[0] - tile + 1, tile):
            for x in range(0, train.shape[1] - tile + 1, tile):
                side = "hr" if coin.random() < 0.5 else "lr_source"
                parts[side][f"{name}-{y}-{x}"] = train[y : y + tile, x : x + tile]
    if tile is not None and not (parts["hr"] and parts["lr_source"]):
        raise AdlError(f"--tile {tile}: too large; the photos give no tiles for one side, use a smaller tile")
    return parts


def write_sample_protocol(output: str | Path, kernel: np.ndarray, scale: int, tile: int | None = None,
                          seed: int = 0, photos: str = "skimage") -> dict[str, Path]:
    """Write hr/, lr/, test_hr/ and test_lr/ under ``output``; returns the four folders.

    The split of sample_split, degraded at once: lr/ holds (HR ∗ k)↓s of the crops that are not
    in hr/, and test_lr/ is the true LR of test_hr/. Each crop is degraded on its own, exactly as
    ``adl degrade`` does in the workflow (replicate borders at tile edges included).
    """
    from adl.degradation import (
        degrade,  # torch: only the degrading half of this module needs it
    )

    output = Path(output)
    folders = {name: output / name for name in ("hr", "lr", "test_hr", "test_lr")}
    parts = sample_split(scale, tile, seed, photos)
    for name, image in parts["hr"].items():
        write_png(folders["hr"] / f"{name}.png", image)
    for name, image in parts["lr_source"].items():
        write_png(folders["lr"] / f"{name}.png", degrade(image, kernel, scale))
    for name, image in parts["test_hr"].items():
        write_png(folders["test_hr"] / f"{name}.png", image)
        write_png(folders["test_lr"] / f"{name}.png", degrade(image, kernel, scale))
    return folders
