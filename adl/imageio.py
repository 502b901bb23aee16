"""Reading, writing and listing images under the pixel conventions of method.md §1.

Every image in adl is an HxWx3 uint8 RGB array. Other layouts are converted on read and each
kind of conversion is logged once per process, so a folder of 800 grayscale files gives one line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from adl.atomic import atomic_path
from adl.errors import AdlError
from adl.png16 import is_16bit_colour_png, read_png16

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
_logged_conversions: set[str] = set()


def _note_conversion(kind: str) -> None:
    if kind not in _logged_conversions:
        _logged_conversions.add(kind)
        log.warning("converting %s to 8-bit RGB (logged once)", kind)


def _scaled(samples: np.ndarray, bits: int) -> np.ndarray:
    """The one rule for deep images: v · 255 / (2^bits − 1), rounded half to even (docs/conventions.md)."""
    return np.round(samples.astype(np.float64) * (255.0 / (2**bits - 1))).astype(np.uint8)


def _to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I"):
        bits = 16
        if mode == "I":  # 32-bit integer pixels: the file says how many bits hold the value
            declared = getattr(img, "tag_v2", {}).get(258)  # TIFF BitsPerSample
            bits = int(declared[0] if isinstance(declared, tuple) else declared or 32)
            if bits != 16:
                raise AdlError(f"{path}: {bits}-bit integer image; its white level is not defined, so adl does "
                               f"not guess it: save it as 8- or 16-bit")
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise AdlError(f"{path}: integer image with values outside 0..65535; save it as 8- or 16-bit")
        _note_conversion("16-bit grayscale images")
        return np.repeat(_scaled(arr, 16)[..., None], 3, axis=2)
    if mode == "F":
        raise AdlError(f"{path}: floating-point image mode 'F' is not supported; save it as 8- or 16-bit")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        _note_conversion("images with alpha (alpha dropped)")
        return np.asarray(img.convert("RGBA").convert("RGB"), dtype=np.uint8)
    if mode in ("L", "1"):
        _note_conversion("grayscale images")
    else:
        _note_conversion(f"{mode} images")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read PNG, JPEG, WebP or TIFF into an HxWx3 uint8 array, or raise AdlError naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if is_16bit_colour_png(img):  # Pillow would keep only the top 8 bits of each sample
                _note_conversion("16-bit colour PNGs")
                arr = _scaled(read_png16(path)[..., :3], 16)  # alpha dropped, as for 8-bit images
            else:
                img.load()
                arr = _to_rgb8(img, path)
    except AdlError:
        raise
    except FileNotFoundError:
        raise AdlError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise AdlError(f"{path}: cannot read image ({exc}); replace or remove the file") from None
    # PIL hands out read-only views; torch.from_numpy warns on those, and callers may edit in place.
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


def image_pixels(path: str | os.PathLike) -> int:
    """Width × height from the file's header, without decoding; 0 for a file that cannot be read
    (read_image names the problem when the image's turn comes)."""
    try:
        with Image.open(path) as img:
            return img.size[0] * img.size[1]
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return 0


def crop_to_scale(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop an HxWx3 image at the bottom/right to a multiple of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an HxWx3 (or HxW) uint8 array as PNG, atomically."""
    if image.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8, got {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def list_images(folder: str | os.PathLike, *, what: str = "folder") -> list[Path]:
    """The image files of ``folder`` in sorted name order.

    Files with other suffixes are skipped and counted in one warning; hidden files (including
    adl's own ``.name.part`` temporaries) are skipped silently. An empty result is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AdlError(f"{what} {folder}: not a folder; pass a folder of images")
    images, others = [], 0
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry)
        else:
            others += 1
    if others:
        log.warning("%s: ignored %d file(s) that are not images (%s)", folder, others, ", ".join(IMAGE_SUFFIXES))
    if not images:
        raise AdlError(f"{what} {folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return images


def require_unique_stems(paths: list[Path], what: str) -> list[Path]:
    """Outputs are named ``<stem>.png``: ``a.jpg`` and ``a.png`` would overwrite each other."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise AdlError(f"{what}: {seen[p.stem].name} and {p.name} share the name {p.stem!r}, and outputs are "
                           f"named by it; rename one of them")
        seen[p.stem] = p
    return paths


def pair_by_stem(first: list[Path], second: list[Path], first_name: str, second_name: str) -> list[tuple[Path, Path]]:
    """Pair two image lists by file stem, so ``0801.png`` pairs with ``0801.png`` or ``0801.jpg``.

    Any unmatched file is an error naming it: silently training on half a set is worse than stopping.
    """
    require_unique_stems(first, first_name)
    require_unique_stems(second, second_name)
    by_stem = {p.stem: p for p in second}
    pairs, missing = [], []
    for p in first:
        if p.stem in by_stem:
            pairs.append((p, by_stem.pop(p.stem)))
        else:
            missing.append(p)
    if missing:
        raise AdlError(
            f"{missing[0]}: no file with the same name in {second_name} ({len(missing)} unpaired in all); "
            f"{first_name} and {second_name} must hold the same names"
        )
    if by_stem:
        extra = sorted(by_stem.values())
        raise AdlError(
            f"{extra[0]}: no file with the same name in {first_name} ({len(extra)} unpaired in all); "
            f"{first_name} and {second_name} must hold the same names"
        )
    return pairs


def refuse_same_folder(src: Path, dst: Path) -> None:
    """An output folder must be a folder, and not the input folder: outputs would overwrite inputs."""
    if dst.exists() and not dst.is_dir():
        raise AdlError(f"--output {dst}: exists and is not a folder; name a folder for the output images")
    if dst.exists() and src.resolve() == dst.resolve():
        raise AdlError(f"--output {dst}: same folder as --input; outputs would overwrite inputs")
