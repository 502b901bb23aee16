"""Issue 17: noisy and JPEG LR sets. Denoising against a known noise level, the noise model's fit and
pool against the truth, noisy generation (deterministic, resumable after SIGKILL, equal on ONNX
Runtime and torch), the LR set's JPEG tables in generated files, and every bad input as one line.

The synthetic set: piecewise-smooth 64×64 images (gradients and flat rectangles, 20..235 levels)
with noise of a known law added, so that the truth (σ, or a and b) is known exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import assert_one_error, run_cli
from PIL import Image
from skimage import data

from adl.cli import main
from adl.data.denoise import denoise_folder
from adl.data.noise_model import build_noise_model, load_noise_model, save_noise_model
from adl.imageio import list_images, read_image, write_png
from adl.metrics import psnr

pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA = 8.0  # the Gaussian setting, in 8-bit levels (≥ 5/255 as the issue asks)
A, B = 0.3, 4.0  # the signal-dependent setting: variance = A·I + B
IMAGES, SIZE = 8, 64
GEN = ["--patch", "16", "--patches-per-image", "2", "--shard-size", "3", "--workers", "1", "--seed", "0"]


def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """Gradients and two flat rectangles with sharp edges: flat regions at many intensities."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    image = rng.uniform(50, 200, 3) + rng.uniform(-40, 40, 3) * x[..., None] + rng.uniform(-40, 40, 3) * y[..., None]
    for _ in range(2):
        y0, x0 = rng.integers(0, SIZE // 2, 2)
        h, w = rng.integers(SIZE // 4, SIZE // 2, 2)
        image[y0 : y0 + h, x0 : x0 + w] = rng.uniform(25, 230, 3)
    return np.clip(np.round(image), 20, 235).astype(np.uint8)


def noisy_copy(clean: np.ndarray, law: str, rng: np.random.Generator) -> np.ndarray:
    c = clean.astype(np.float64)
    variance = np.full_like(c, SIGMA**2) if law == "gauss" else A * c + B
    return np.clip(np.round(c + np.sqrt(variance) * rng.standard_normal(c.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict:
    """clean/, and per noise law: noisy/, nl-means-denoised and a noise model of it (×2)."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(17)
    for k in range(IMAGES):
        write_png(root / "clean" / f"{k:02d}.png", smooth_image(rng))
    found = {"root": root, "clean": root / "clean"}
    for law in ("gauss", "sd"):
        noise_rng = np.random.default_rng([17, len(law)])
        for path in list_images(root / "clean"):
            write_png(root / law / "noisy" / path.name, noisy_copy(read_image(path), law, noise_rng))
        denoise_folder(root / law / "noisy", root / law / "denoised", "nl-means")
        build_noise_model(root / law / "noisy", root / law / "denoised", root / law / "model.npz", 2, patch=16)
        found[law] = root / law
    return found


def mean_psnr(folder: Path, clean: Path) -> float:
    return float(np.mean([psnr(read_image(folder / p.name), read_image(p), 0) for p in list_images(clean)]))


# -- (a) denoising ------------------------------------------------------------------------------------
def test_nl_means_raises_psnr_and_records_the_estimated_level(sets):
    gain = mean_psnr(sets["gauss"] / "denoised", sets["clean"]) - mean_psnr(sets["gauss"] / "noisy", sets["clean"])
    # Measured +13.8 dB on this set (2-core machine, loaded); 8 dB leaves room and fails for a weak denoiser.
    assert gain > 8.0, gain
    record = json.loads((sets["gauss"] / "denoised" / "denoise.json").read_text())
    assert record["complete"] and record["options"] == {"method": "nl-means", "sigma": None}
    levels = np.array([v["sigma_estimated"] for v in record["images"].values()])
    assert levels.shape == (IMAGES, 3)
    assert abs(levels.mean() / SIGMA - 1) < 0.15, levels.mean()  # the estimate, not the truth, is what was used


# Measured on all 8 images: BM3D +15.8 dB, wavelet +6.3 dB.
@pytest.mark.parametrize("method,margin", [("bm3d", 10.0), ("wavelet", 3.0)])
def test_bm3d_and_wavelet_raise_psnr(sets, tmp_path, method, margin):
    few = tmp_path / "noisy"
    for path in list_images(sets["gauss"] / "noisy")[:2]:  # BM3D takes ~1 s per 64×64 image here
        write_png(few / path.name, read_image(path))
    code = main(["-q", "denoise", "--input", str(few), "--output", str(tmp_path / "out"), "--method", method])
    assert code == 0
    clean = {p.name: read_image(p) for p in list_images(sets["clean"])}
    gains = [psnr(read_image(tmp_path / "out" / p.name), clean[p.name], 0) - psnr(read_image(p), clean[p.name], 0)
             for p in list_images(few)]
    assert min(gains) > margin, gains


def test_denoise_resumes_and_refuses_other_options(sets, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["denoise", "--input", sets["gauss"] / "noisy", "--output", out, "--method", "wavelet"]
    assert run_cli(capsys, args)[0] == 0
    first = out / "00.png"
    stamp = first.stat().st_mtime_ns
    (out / "03.png").unlink()  # as an interrupted run leaves it
    assert run_cli(capsys, args)[0] == 0
    assert first.stat().st_mtime_ns == stamp and (out / "03.png").exists()
    assert_one_error(capsys, [*args[:-1], "nl-means"], "--output", out, "method")


# -- (b), (c) the noise model against the truth -------------------------------------------------------
def injected_std(model_path: Path, clean: Path, mode: str) -> np.ndarray:
    model = load_noise_model(model_path)
    rng = np.random.default_rng(0)
    samples = [model.sample(read_image(p).astype(np.float64), mode, rng) for p in list_images(clean)]
    return np.concatenate([s.reshape(-1, 3) for s in samples]).std(axis=0)


@pytest.mark.parametrize("mode", ["fit", "pool"])
def test_injected_gaussian_noise_has_the_true_level(sets, mode):
    std = injected_std(sets["gauss"] / "model.npz", sets["clean"], mode)
    assert np.all(np.abs(std / SIGMA - 1) < 0.10), std


def test_injected_signal_dependent_noise_has_the_true_level(sets):
    clean = np.concatenate([read_image(p).reshape(-1, 3) for p in list_images(sets["clean"])]).astype(np.float64)
    truth = np.sqrt((A * clean + B).mean(axis=0))
    std = injected_std(sets["sd"] / "model.npz", sets["clean"], "fit")
    assert np.all(np.abs(std / truth - 1) < 0.10), (std, truth)


def test_fitted_a_and_b_match_the_truth(sets):
    gauss, sd = load_noise_model(sets["gauss"] / "model.npz"), load_noise_model(sets["sd"] / "model.npz")
    # Measured on this set (docs/noise.md): Gaussian a ≤ 0.002, b 59.4–60.2 (truth 64: the residual misses
    # ~7 % of the variance); signal-dependent a 0.253–0.258 (truth 0.3), b 5.4–6.7 (truth 4).
    assert np.all(np.abs(gauss.a) < 0.05) and np.all(np.abs(gauss.b / SIGMA**2 - 1) < 0.15), (gauss.a, gauss.b)
    assert np.all(np.abs(sd.a - A) < 0.08) and np.all(np.abs(sd.b - B) < 4.0), (sd.a, sd.b)
    meta = gauss.meta
    assert meta["version"] == 1 and meta["scale"] == 2 and meta["channels"] == 3 and meta["seed"] == 0
    assert [s["noisy"] for s in meta["sources"]] == [f"{k:02d}.png" for k in range(IMAGES)]
    assert all(len(s["noisy_sha256"]) == 64 for s in meta["sources"])
    assert gauss.pool.shape[1:] == (16, 16, 3) and np.allclose(gauss.pool.mean(axis=(1, 2)), 0, atol=1e-4)


def test_same_inputs_give_the_same_model_file(sets, tmp_path):
    again = build_noise_model(sets["gauss"] / "noisy", sets["gauss"] / "denoised", tmp_path / "m.npz", 2, patch=16)
    assert again.sha256 == load_noise_model(sets["gauss"] / "model.npz").sha256
