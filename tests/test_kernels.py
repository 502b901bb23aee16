"""Synthetic kernels k0–k4 and kernel validation (method.md §1)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from adl.degradation import apply_kernel, degrade
from adl.errors import AdlError
from adl.kernels import (
    KERNEL_NAMES,
    kernel_picture,
    load_kernel,
    resolve_kernel,
    synthetic_kernel,
    validate_kernel,
)

# (sigma1, sigma2, theta) at x2 from the table of method.md §1, restated here as the truth.
TABLE = {"k3": (2.0, 0.8, math.pi / 4), "k4": (2.2, 1.2, 2 * math.pi / 3)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.mark.parametrize("scale", [2, 4])
def test_k0_matches_pil_bicubic_in_the_interior(scale):
    hr = data.astronaut()[:256, :256]
    ours = degrade(hr, synthetic_kernel("k0", scale), scale)
    size = (hr.shape[1] // scale, hr.shape[0] // scale)
    pil = np.asarray(Image.fromarray(hr).resize(size, Image.BICUBIC))
    shave = 8
    assert _psnr(ours[shave:-shave, shave:-shave], pil[shave:-shave, shave:-shave]) > 45


@pytest.mark.parametrize("scale", [2, 4])
def test_k0_matches_torch_antialiased_bicubic_in_float64(scale):
    x = torch.from_numpy(data.coffee()[:96, :128].copy()).permute(2, 0, 1)[None].double() / 255
    ours = apply_kernel(x, synthetic_kernel("k0", scale), scale)
    ref = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    assert ours.shape == ref.shape
    # Borders differ (replicate padding vs torch's renormalised truncation); 2 LR pixels clear the 4s taps.
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(ours[inner], ref[inner], atol=1e-10, rtol=0)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_sum_to_one_with_the_table_sizes(name, scale):
    k = synthetic_kernel(name, scale)
    expected = 4 * scale if name == "k0" else 10 * scale
    assert k.shape == (expected, expected)
    assert k.dtype == np.float64
    assert k.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("scale", [2, 4])
def test_isotropic_and_anisotropic_kernels(scale):
    for name in ("k0", "k1", "k2"):
        k = synthetic_kernel(name, scale)
        np.testing.assert_allclose(k, k.T, atol=1e-15)
        np.testing.assert_allclose(k, np.rot90(k), atol=1e-15)
    for name in ("k3", "k4"):
        k = synthetic_kernel(name, scale)
        assert np.abs(k - np.rot90(k)).max() > 1e-3


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", ["k3", "k4"])
def test_anisotropic_orientation_and_spread(name, scale):
    """The second moments of the taps must give back σ1², σ2² and θ, with x right and y down."""
    k = synthetic_kernel(name, scale)
    size = k.shape[0]
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    mean_x, mean_y = (k * x).sum(), (k * y).sum()
    assert abs(mean_x) < 1e-12 and abs(mean_y) < 1e-12
    cov = np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])
    sigma1, sigma2, theta = TABLE[name]
    factor = scale // 2
    variances, vectors = np.linalg.eigh(cov)
    assert variances[1] == pytest.approx((sigma1 * factor) ** 2, rel=0.02)
    assert variances[0] == pytest.approx((sigma2 * factor) ** 2, rel=0.02)
    long_axis = vectors[:, 1]
    angle = math.atan2(long_axis[1], long_axis[0]) % math.pi
    assert angle == pytest.approx(theta % math.pi, abs=1e-3)


def test_k3_long_axis_runs_along_the_main_diagonal():
    k = synthetic_kernel("k3", 2)
    # One step down-right stays on the long axis; one step down-left leaves it.
    c = k.shape[0] // 2
    assert k[c + 3, c + 3] > 10 * k[c + 3, c - 4]


def test_validate_kernel_rejects_bad_kernels():
    with pytest.raises(AdlError, match="2-D"):
        validate_kernel(np.ones((2, 2, 2)), 2, "k.npy")
    with pytest.raises(AdlError, match="NaN"):
        validate_kernel(np.array([[np.nan, 1.0], [0.0, 0.0]]), 2, "k.npy")
    with pytest.raises(AdlError, match="sums to"):
        validate_kernel(np.array([[1.0, -1.0], [0.0, 0.0]]), 2, "k.npy")
    with pytest.raises(AdlError, match="does not fit scale 2"):
        validate_kernel(np.ones((3, 3)) / 9, 2, "k.npy")
    with pytest.raises(AdlError, match="width 5"):
        validate_kernel(np.ones((4, 5)) / 20, 2, "k.npy")
    with pytest.raises(AdlError, match="real numbers"):
        validate_kernel(np.array([["a", "b"], ["c", "d"]]), 2, "k.npy")


def test_validate_kernel_renormalises_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="adl.kernels"):
        k = validate_kernel(np.full((4, 4), 2.0 / 16), 2, "double.npy")
    assert k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, np.full((4, 4), 1.0 / 16))
    assert any("double.npy" in r.getMessage() and "renormalised" in r.getMessage() for r in caplog.records)


def test_validate_kernel_accepts_odd_kernels_at_odd_scales():
    k = validate_kernel(np.ones((5, 5)), 3, "k.npy")
    assert k.sum() == pytest.approx(1.0)


def test_load_and_resolve_kernel(tmp_path):
    kernel = np.random.default_rng(0).random((6, 8))
    kernel /= kernel.sum()
    path = tmp_path / "mine.npy"
    np.save(path, kernel)
    np.testing.assert_array_equal(load_kernel(path, 2), kernel)
    np.testing.assert_array_equal(resolve_kernel(str(path), 2), kernel)
    np.testing.assert_array_equal(resolve_kernel("k2", 4), synthetic_kernel("k2", 4))
    with pytest.raises(AdlError, match="no such kernel file"):
        load_kernel(tmp_path / "missing.npy", 2)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(AdlError, match="junk.npy"):
        load_kernel(tmp_path / "junk.npy", 2)
    with pytest.raises(AdlError, match="k9"):
        resolve_kernel("k9", 2)
    with pytest.raises(AdlError, match="--scale 3"):
        synthetic_kernel("k1", 3)


def test_kernel_picture_shape_and_colours():
    k = np.zeros((4, 6))
    k[1, 2] = 0.75
    k[3, 5] = -0.25
    picture = kernel_picture(k, cell=5)
    assert picture.shape == (20, 30, 3) and picture.dtype == np.uint8
    assert tuple(picture[1 * 5 + 2, 2 * 5 + 2]) == (0, 255, 0)
    assert tuple(picture[3 * 5 + 2, 5 * 5 + 2]) == (85, 0, 0)
    assert tuple(picture[0, 0]) == (0, 0, 0)
