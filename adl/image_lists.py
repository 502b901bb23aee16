"""HR inputs given as folders, list files or glob patterns, several at once.

Large sets are not stored as one folder of a million files: they come as list files (one path per
line) or as many folders. Every form resolves to one list of image paths, sorted by path, so that
the same images give the same order (and so the same samples) however they were named.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from adl.errors import AdlError
from adl.imageio import IMAGE_SUFFIXES, list_images

GLOB_CHARACTERS = "*?["


def _list_file(path: Path, what: str) -> list[Path]:
    """Paths of a list file: blank lines and ``#`` comments skipped, relative paths taken from its folder."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdlError(f"{what} {path}: unreadable list file ({exc}); give one image path per line") from None
    images = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line)
        # Not stat'ed here: a million files on a network filesystem would take minutes; a missing
        # one is named when it is read.
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise AdlError(f"{what} {path}: line {number} ({line!r}) is not an image path "
                           f"({', '.join(IMAGE_SUFFIXES)}); give one image path per line")
        # Normalised, so that one file listed two ways (a/../b.png, b.png) is caught as a duplicate.
        images.append(Path(os.path.normpath(entry if entry.is_absolute() else path.parent / entry)))
    if not images:
        raise AdlError(f"{what} {path}: the list file names no images; give one image path per line")
    return images


def _pattern(spec: str, what: str) -> list[Path]:
    matched = [Path(p) for p in glob.glob(spec, recursive=True)]
    images = [p for p in matched if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not images:
        raise AdlError(f"{what} {spec!r}: the pattern matched no image files ({', '.join(IMAGE_SUFFIXES)}); "
                       f"quote it so that the shell leaves it to adl")
    return images


def resolve_images(specs: str | os.PathLike | Sequence[str | os.PathLike], *, what: str = "--hr") -> list[Path]:
    """The images named by one or more folders, list files (``.txt``/``.lst`` or any non-image file)
    or glob patterns, sorted by path; an image named twice is an error naming it."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    if not specs:
        raise AdlError(f"{what}: give at least one folder, list file or quoted glob pattern")
    images: list[Path] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            images += list_images(path, what=what)
        elif path.is_file():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise AdlError(f"{what} {path}: an image, not a folder or list; pass its folder, a list file "
                               f"or a quoted glob pattern")
            images += _list_file(path, what)
        elif any(c in spec for c in GLOB_CHARACTERS):
            images += _pattern(spec, what)
        else:
            raise AdlError(f"{what} {spec}: no such folder, list file or pattern")
    images.sort(key=str)
    for a, b in zip(images, images[1:]):
        if str(a) == str(b):
            raise AdlError(f"{what}: {a} is named twice; each image may appear once")
    return images
