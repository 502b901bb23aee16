"""What happens to an IDown on the host after G (issue 17): noise of the LR set's model added in
float before rounding, and JPEG encoding with the LR set's quantisation tables.

Noise is added here, not inside a backend, so that ONNX Runtime and torch add the very same
sample: it is drawn from a generator seeded with (seed, NOISE_STREAM, image index) for the whole
LR image, so patches, parts and resumed runs see the same noise wherever they are cut. This
module imports no torch (the ONNX path of generate stays torch-free).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adl.data.jpeg import JpegTables, decode_jpeg, lr_set_tables
from adl.data.noise_model import NoiseModel, check_model_for, load_noise_model

NOISE_STREAM = 5  # the patch positions use stream 4 (adl.shards.generate.PATCH_STREAM)
JPEG_FOLDER = "lr_jpeg"  # --format png --jpeg-like: the LR JPEG files, beside lr/ and hr/


class Finisher:
    def __init__(self, noise: str | None, mode: str, jpeg_like: str | None, seed: int):
        self.mode, self.seed = mode, seed
        self.model: NoiseModel | None = load_noise_model(noise) if noise is not None else None
        self.tables: JpegTables | None = lr_set_tables(jpeg_like) if jpeg_like is not None else None
        self.jpeg_source = jpeg_like

    def check_scale(self, scale: int) -> None:
        if self.model is not None:
            check_model_for(self.model, scale)

    @property
    def float_output(self) -> bool:
        """The backend must hand over unrounded LR: noise is added before rounding."""
        return self.model is not None

    def lr(self, index: int, lr: np.ndarray) -> np.ndarray:
        """The uint8 IDown of image ``index``: G's float output plus noise, rounded half to even."""
        if self.model is None:
            return lr
        rng = np.random.default_rng([self.seed, NOISE_STREAM, index])
        noisy = lr + self.model.sample(lr, self.mode, rng)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)

    def pixels(self, lr: np.ndarray) -> np.ndarray:
        """An LR array as it will be stored: through the LR set's JPEG tables when there are any."""
        return lr if self.tables is None else self.tables.roundtrip(lr)

    def lr_files(self, folder: Path, name: str) -> list[Path]:
        """The files one pair's LR side is written to under a pairs ``folder``."""
        files = [folder / "lr" / name]
        if self.tables is not None:
            files.append(folder / JPEG_FOLDER / Path(name).with_suffix(".jpg").name)
        return files

    def write_lr(self, folder: Path, name: str, lr: np.ndarray) -> None:
        """lr/NAME as PNG, atomically. With --jpeg-like, first lr_jpeg/<stem>.jpg (the LR set's tables) and
        lr/NAME its decoded pixels: BasicSR pairs lr/ with hr/ by name *and* extension, so a .jpg in lr/
        would not pair with hr/<stem>.png; the PNG also fixes the pixels whatever JPEG decoder reads them."""
        from adl.atomic import atomic_path
        from adl.imageio import write_png

        if self.tables is not None:
            encoded = self.tables.encode(lr)
            with atomic_path(self.lr_files(folder, name)[1]) as tmp:
                tmp.write_bytes(encoded)
            lr = decode_jpeg(encoded)
        write_png(folder / "lr" / name, lr)

    def record(self) -> dict:
        """What the generation's identity (resume record) must include: the model's bytes and mode, the tables."""
        found = {}
        if self.model is not None:
            found["noise"] = {"sha256": self.model.sha256, "mode": self.mode}
        if self.tables is not None:
            found["jpeg_tables_sha256"] = self.tables.sha256
        return found

    def manifest(self) -> dict:
        found = {}
        if self.model is not None:
            found["noise"] = {"path": self.model.path, "sha256": self.model.sha256, "mode": self.mode,
                              "version": self.model.meta["version"], "stream": NOISE_STREAM}
        if self.tables is not None:
            found["jpeg"] = self.tables.record(str(self.jpeg_source))
        return found
