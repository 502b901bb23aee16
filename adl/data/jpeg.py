"""The JPEG quantisation tables of an LR set, and encoding an IDown with them, so that generated
LR images carry the compression of the real ones (issue 17).

**(decision, docs/conventions.md)** A set that mixes several table sets is represented by its most
common (tables, chroma subsampling) pair, ties going to the pair of the first file in name order:
one deterministic choice, with no random stream to keep in step on resume, that follows the
camera setting most of the set was saved with. The manifest records the chosen tables and how
many of the set's JPEG files use them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from adl.errors import AdlError
from adl.image_lists import resolve_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JpegTables:
    qtables: tuple[tuple[int, ...], ...]  # Pillow's order: luminance first, then chrominance
    subsampling: int  # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    files: int  # JPEG files of the set that use these tables
    jpeg_files: int  # JPEG files in the set

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps([self.qtables, self.subsampling]).encode()).hexdigest()

    def record(self, source: str) -> dict:
        return {"source": source, "tables_sha256": self.sha256, "subsampling": self.subsampling,
                "quantization": [list(t) for t in self.qtables], "files": self.files, "jpeg_files": self.jpeg_files}

    def encode(self, image: np.ndarray) -> bytes:
        """HxWx3 uint8 → JPEG bytes quantised with these tables (baseline, no optimisation, no metadata)."""
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", qtables=[list(t) for t in self.qtables],
                                    subsampling=self.subsampling)
        return buffer.getvalue()

    def roundtrip(self, image: np.ndarray) -> np.ndarray:
        """``image`` as a reader of its JPEG file sees it."""
        return decode_jpeg(self.encode(image))


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes → HxWx3 uint8, decoded by Pillow (the one decoder adl's JPEG pixels come from)."""
    with Image.open(io.BytesIO(data)) as decoded:
        return np.array(decoded.convert("RGB"), dtype=np.uint8)


def lr_set_tables(source: str, option: str = "--jpeg-like") -> JpegTables:
    """The most common quantisation tables of the JPEG files among ``source`` (a folder, list or glob)."""
    paths = resolve_images(source, what=option)
    counts: Counter = Counter()
    first: dict = {}
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.format != "JPEG":
                    continue
                key = (tuple(tuple(img.quantization[k]) for k in sorted(img.quantization)),
                       JpegImagePlugin.get_sampling(img))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise AdlError(f"{path}: cannot read image ({exc}); replace or remove the file") from None
        counts[key] += 1
        first.setdefault(key, len(first))
    if not counts:
        raise AdlError(f"{option} {source}: no JPEG files among its {len(paths)} image(s); give the folder of "
                       f"the JPEG LR set, or leave {option} out")
    jpeg_files = sum(counts.values())
    if jpeg_files < len(paths):
        log.warning("%s %s: %d of %d images are not JPEG; tables come from the JPEG ones", option, source,
                    len(paths) - jpeg_files, len(paths))
    (qtables, sampling), files = max(counts.items(), key=lambda kv: (kv[1], -first[kv[0]]))
    if len(counts) > 1:
        log.warning("%s %s: %d different table sets; using the most common (%d of %d files)", option, source,
                    len(counts), files, jpeg_files)
    # get_sampling gives -1 for layouts Pillow cannot name (e.g. grayscale); 4:2:0 is the common default.
    return JpegTables(qtables, sampling if sampling >= 0 else 2, files, jpeg_files)
