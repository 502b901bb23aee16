"""A noise model of an LR set, estimated from the residual between each LR image and its denoised
version, and noise sampled from it (beyond the paper: its §4.7 only denoises; RealSR, Ji et al.
CVPRW 2020, injects real noise patches into downsampled images).

Two models share one file:

- **pool** (RealSR's way): residual patches from flat regions of the LR set, each with its
  per-channel mean removed. Flat means that every pixel's 7×7 neighbourhood in the denoised image
  has a standard deviation of at most ``flat_std`` levels, so the residual there is noise and not
  texture the denoiser removed.
- **fit**: a signal-dependent (Poisson–Gaussian) model per channel, variance = a·I + b, with I the
  clean intensity and the variance both in 8-bit levels, fitted by non-negative least squares to
  the residual's variance in 16 intensity bins over the same flat pixels.

The file is a zip (``.npz``-compatible, members written with a fixed date so that the same inputs
give the same bytes) holding ``meta.json`` (version, provenance: sources and their sha256s,
scale, channels, seed, settings) and the arrays. Its reader needs numpy only, so the ONNX path of
``adl generate`` stays free of torch.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import adl
from adl.atomic import atomic_path, file_sha256
from adl.choices import NOISE_MODES as MODES
from adl.errors import AdlError
from adl.imageio import list_images, pair_by_stem, read_image
from adl.noise_law import signal_dependent_noise
from adl.progress import progress

VERSION = 1
KIND = "adl-noise-model"
WINDOW = 7  # the neighbourhood whose standard deviation decides flatness
BINS = 16
MIN_BIN_PIXELS = 256
# Noise in pixels near black or white was clipped in the LR file: its variance would bias the fit.
USABLE = (10.0, 245.0)
_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class NoiseModel:
    pool: np.ndarray  # (N, P, P, C) float32, zero-mean residual patches, 8-bit levels
    a: np.ndarray  # (C,) float64: variance = a·I + b
    b: np.ndarray
    meta: dict
    sha256: str = ""
    path: str = ""

    @property
    def channels(self) -> int:
        return int(self.a.shape[0])

    def sample(self, clean: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
        """Noise for an HxWxC float image ``clean`` (8-bit levels), float32, drawn from ``rng``."""
        if mode == "fit":
            return signal_dependent_noise(clean, self.a, self.b, rng)
        if mode != "pool":
            raise AdlError(f"--noise-mode {mode}: choose from {', '.join(MODES)}")
        # Tiles of pool patches chosen at random cover the image; the last row and column are cropped.
        h, w = clean.shape[:2]
        p = self.pool.shape[1]
        rows, cols = -(-h // p), -(-w // p)
        chosen = self.pool[rng.integers(len(self.pool), size=rows * cols)]
        tiled = chosen.reshape(rows, cols, p, p, -1).transpose(0, 2, 1, 3, 4).reshape(rows * p, cols * p, -1)
        return np.ascontiguousarray(tiled[:h, :w])


def _local_std(image: np.ndarray) -> np.ndarray:
    """Per-pixel, per-channel standard deviation over a WINDOW×WINDOW neighbourhood (reflected borders)."""
    from scipy.ndimage import uniform_filter

    mean = uniform_filter(image, size=(WINDOW, WINDOW, 1), mode="reflect")
    square = uniform_filter(image * image, size=(WINDOW, WINDOW, 1), mode="reflect")
    return np.sqrt(np.maximum(square - mean * mean, 0))


def _flat_regions(noisy: np.ndarray, clean: np.ndarray, flat_std: float, patch: int):
    """(residual, clean, flat mask of pixels, flat residual patches) of one image pair."""
    residual = noisy.astype(np.float64) - clean.astype(np.float64)
    c = clean.astype(np.float64)
    usable = (c >= USABLE[0]) & (c <= USABLE[1])
    flat = (_local_std(c) <= flat_std).all(axis=2, keepdims=True) & usable
    patches = []
    h, w = clean.shape[:2]
    for y in range(0, h - patch + 1, patch):
        for x in range(0, w - patch + 1, patch):
            if flat[y : y + patch, x : x + patch].all():
                r = residual[y : y + patch, x : x + patch]
                patches.append((r - r.mean(axis=(0, 1))).astype(np.float32))
    return residual, c, flat, patches


def _fit(bins: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Per channel, variance = a·I + b by weighted non-negative least squares over the usable bins.

    ``bins`` is (C, BINS, 4): pixel count, Σ intensity, Σ residual, Σ residual²."""
    from scipy.optimize import nnls

    a, b, table = [], [], []
    for ch, stats in enumerate(bins):
        n, si, sr, sr2 = stats.T
        keep = n >= MIN_BIN_PIXELS
        if keep.sum() < 2:
            raise AdlError(f"{where}: only {int(keep.sum())} intensity bin(s) of channel {ch} have {MIN_BIN_PIXELS} "
                           f"flat pixels (need 2 to fit variance = a·I + b); the LR set is too small or too "
                           f"textured: add images or raise --flat-std")
        n, mean_i = n[keep], si[keep] / n[keep]
        var = sr2[keep] / n - (sr[keep] / n) ** 2
        weight = np.sqrt(n)
        (ai, bi), _ = nnls(np.stack([mean_i, np.ones_like(mean_i)], 1) * weight[:, None], var * weight)
        a.append(ai)
        b.append(bi)
        table.append([[round(float(i), 3), round(float(v), 4), int(k)] for i, v, k in zip(mean_i, var, n)])
    return np.array(a), np.array(b), table


def build_noise_model(noisy_dir: str | Path, clean_dir: str | Path, output: str | Path, scale: int,
                      patch: int = 32, flat_std: float = 4.0, max_patches: int = 4096, min_patches: int = 16,
                      seed: int = 0) -> NoiseModel:
    """Estimate both models from the pairs (noisy LR, denoised LR), matched by stem, and write ``output``."""
    pairs = pair_by_stem(list_images(noisy_dir, what="--noisy"), list_images(clean_dir, what="--clean"),
                         "--noisy", "--clean")
    bins = np.zeros((3, BINS, 4))
    pool: list[np.ndarray] = []
    sources = []
    for noisy_path, clean_path in progress(pairs, desc="noise model", unit="img"):
        noisy, clean = read_image(noisy_path), read_image(clean_path)
        if noisy.shape != clean.shape:
            raise AdlError(f"{clean_path}: {clean.shape[1]}x{clean.shape[0]}, but {noisy_path} is "
                           f"{noisy.shape[1]}x{noisy.shape[0]}; --clean must hold the denoised --noisy images")
        residual, c, flat, patches = _flat_regions(noisy, clean, flat_std, patch)
        pool += patches
        for ch in range(3):
            m = flat[..., 0]
            idx = np.minimum((c[..., ch][m] * BINS / 256).astype(int), BINS - 1)
            r = residual[..., ch][m]
            for col, values in enumerate((np.ones_like(r), c[..., ch][m], r, r * r)):
                bins[ch, :, col] += np.bincount(idx, weights=values, minlength=BINS)
        sources.append({"noisy": noisy_path.name, "noisy_sha256": file_sha256(noisy_path),
                        "clean": clean_path.name, "clean_sha256": file_sha256(clean_path)})
    if len(pool) < min_patches:
        raise AdlError(f"--noisy {noisy_dir}: only {len(pool)} flat {patch}x{patch} patch(es) in {len(pairs)} "
                       f"image(s), need {min_patches}; the LR set is too small or too textured to estimate a noise "
                       f"model from: add images, lower --patch or raise --flat-std")
    a, b, table = _fit(bins, f"--noisy {noisy_dir}")
    chosen = np.stack(pool)
    if len(chosen) > max_patches:  # a seeded subset, in the order found: same inputs and seed, same file
        keep = np.sort(np.random.default_rng([seed, 0]).choice(len(chosen), max_patches, replace=False))
        chosen = chosen[keep]
    meta = {"kind": KIND, "version": VERSION, "adl_version": adl.__version__, "scale": scale, "channels": 3,
            "seed": seed, "patch": patch, "flat_std": flat_std, "window": WINDOW, "units": "8-bit levels",
            "fit": "variance = a*I + b per channel (R, G, B), I the denoised intensity",
            "flat_patches_found": len(pool), "bins": table, "sources": sources}
    model = NoiseModel(chosen, a, b, meta)
    save_noise_model(model, output)
    return load_noise_model(output)


def save_noise_model(model: NoiseModel, path: str | Path) -> None:
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("meta.json", _DATE), json.dumps(model.meta, indent=1, sort_keys=True))
        for name, array in (("pool", model.pool), ("a", model.a), ("b", model.b)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", _DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buffer.getvalue())


def load_noise_model(path: str | Path, option: str = "--noise") -> NoiseModel:
    """Read and check a noise model file, or raise one AdlError naming it."""
    path = Path(path)
    if not path.is_file():
        raise AdlError(f"{option} {path}: no such file; build one with adl noise-model")
    fix = "rebuild it with adl noise-model"
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("meta.json"))
            arrays = {name: np.lib.format.read_array(io.BytesIO(z.read(f"{name}.npy")), allow_pickle=False)
                      for name in ("pool", "a", "b")}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib_error()) as exc:
        raise AdlError(f"{option} {path}: not a readable adl noise model ({type(exc).__name__}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise AdlError(f"{option} {path}: not an adl noise model; {fix}")
    if meta.get("version") != VERSION:
        raise AdlError(f"{option} {path}: noise model version {meta.get('version')!r}, this adl reads {VERSION}; {fix}")
    pool, a, b = arrays["pool"], arrays["a"], arrays["b"]
    c = meta.get("channels")
    if (pool.ndim != 4 or pool.shape[1] != pool.shape[2] or len(pool) == 0 or pool.shape[3] != c
            or a.shape != (c,) or b.shape != (c,) or not all(np.isfinite(x).all() for x in (pool, a, b))):
        raise AdlError(f"{option} {path}: damaged noise model (arrays disagree with its {c} channel(s)); {fix}")
    return NoiseModel(pool.astype(np.float32), a.astype(np.float64), b.astype(np.float64), meta,
                      file_sha256(path), str(path))


def zlib_error():
    import zlib

    return zlib.error


def check_model_for(model: NoiseModel, scale: int, channels: int = 3, option: str = "--noise") -> None:
    """A model estimated for another scale or channel count would inject the wrong noise."""
    if model.meta.get("scale") != scale:
        raise AdlError(f"{option} {model.path}: a noise model of a ×{model.meta.get('scale')} LR set, but this "
                       f"generation is ×{scale}; build one from the ×{scale} LR set with adl noise-model --scale {scale}")
    if model.channels != channels:
        raise AdlError(f"{option} {model.path}: a noise model of {model.channels} channel(s), but the images have "
                       f"{channels}; build one from RGB LR images")
