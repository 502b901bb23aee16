"""PSNR and kernel similarity against independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from skimage import data

from adl.errors import AdlError
from adl.kernels import gaussian_kernel, synthetic_kernel
from adl.metrics import kernel_similarity, psnr, psnr_folders

TARGET = data.coffee()[:40, :56].copy()


def _noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def _reference_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def _brute_force_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Slide b over a zero-padded a at every integer offset with any overlap."""
    (ah, aw), (bh, bw) = a.shape, b.shape
    canvas = np.zeros((ah + 2 * bh, aw + 2 * bw))
    canvas[bh : bh + ah, bw : bw + aw] = a
    best = -np.inf
    for dy in range(ah + bh + 1):
        for dx in range(aw + bw + 1):
            best = max(best, float((canvas[dy : dy + bh, dx : dx + bw] * b).sum()))
    return best / (np.linalg.norm(a) * np.linalg.norm(b))


@pytest.mark.parametrize("shave", [0, 3])
def test_psnr_matches_the_formula(shave):
    pred = _noisy(TARGET, 4.0, seed=1)
    inner = (slice(shave, TARGET.shape[0] - shave), slice(shave, TARGET.shape[1] - shave))
    expected = _reference_psnr(pred[inner], TARGET[inner])
    assert psnr(pred, TARGET, shave) == pytest.approx(expected, abs=0.01)
    assert 30 < expected < 40


def test_psnr_shave_hides_border_differences():
    pred = TARGET.copy()
    pred[:2] = 255 - pred[:2]
    pred[:, -2:] = 0
    assert psnr(pred, TARGET, 2) == float("inf")
    assert psnr(pred, TARGET, 1) < 20
    assert psnr(TARGET, TARGET, 0) == float("inf")


def test_psnr_rejects_mismatched_shapes_and_oversized_shave():
    with pytest.raises(AdlError, match="x.png: size 55x40 differs from the reference 56x40"):
        psnr(TARGET[:, :55], TARGET, 0, name="x.png")
    with pytest.raises(AdlError, match="shave"):
        psnr(TARGET, TARGET, 20)


def test_kernel_similarity_of_identical_and_shifted_kernels():
    k = synthetic_kernel("k4", 2)
    assert kernel_similarity(k, k) == pytest.approx(1.0, abs=1e-12)
    shifted = np.zeros((27, 31))
    shifted[5:25, 3:23] = k
    assert kernel_similarity(k, shifted) == pytest.approx(1.0, abs=1e-12)
    assert kernel_similarity(shifted, k) == pytest.approx(1.0, abs=1e-12)


def test_kernel_similarity_of_different_kernels_is_low():
    along = gaussian_kernel(20, 4.0, 0.5, math.pi / 4)
    across = gaussian_kernel(20, 4.0, 0.5, -math.pi / 4)
    similarity = kernel_similarity(along, across)
    assert similarity < 0.3
    assert similarity == pytest.approx(_brute_force_similarity(along, across), abs=1e-12)
    assert kernel_similarity(synthetic_kernel("k1", 2), synthetic_kernel("k2", 2)) < 0.95


def test_kernel_similarity_matches_brute_force_and_is_symmetric():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(8, 4))
    expected = _brute_force_similarity(a, b)
    assert kernel_similarity(a, b) == pytest.approx(expected, abs=1e-12)
    assert kernel_similarity(b, a) == pytest.approx(expected, abs=1e-12)


def test_kernel_similarity_across_sizes():
    small = gaussian_kernel(20, 1.2, 1.2, 0.0)
    large = gaussian_kernel(30, 1.2, 1.2, 0.0)
    assert kernel_similarity(small, large) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(AdlError, match="all zeros"):
        kernel_similarity(small, np.zeros((4, 4)))


def test_psnr_folders_pairs_by_stem(tmp_path):
    pred_dir, target_dir = tmp_path / "pred", tmp_path / "target"
    pred_dir.mkdir()
    target_dir.mkdir()
    noisy = _noisy(TARGET, 3.0, seed=2)
    Image.fromarray(noisy).save(pred_dir / "b.png")
    Image.fromarray(TARGET).save(pred_dir / "a.png")
    Image.fromarray(TARGET).save(target_dir / "a.png")
    Image.fromarray(TARGET).save(target_dir / "b.tif")
    results = psnr_folders(pred_dir, target_dir, shave=2)
    assert [name for name, _ in results] == ["a", "b"]
    assert results[0][1] == float("inf")
    assert results[1][1] == pytest.approx(_reference_psnr(noisy[2:-2, 2:-2], TARGET[2:-2, 2:-2]), abs=0.01)


def test_psnr_folders_names_the_mismatched_file(tmp_path):
    pred_dir, target_dir = tmp_path / "pred", tmp_path / "target"
    pred_dir.mkdir()
    target_dir.mkdir()
    Image.fromarray(TARGET[:, :50]).save(pred_dir / "a.png")
    Image.fromarray(TARGET).save(target_dir / "a.png")
    with pytest.raises(AdlError, match=r"pred/a.png: size 50x40"):
        psnr_folders(pred_dir, target_dir, shave=0)
    (pred_dir / "extra.png").write_bytes((pred_dir / "a.png").read_bytes())
    with pytest.raises(AdlError, match="extra.png"):
        psnr_folders(pred_dir, target_dir, shave=0)
