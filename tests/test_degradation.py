"""The degradation operator against an independent float64 reading of method.md §1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

from adl.degradation import apply_kernel, crop_to_scale, degrade, to_tensor, to_uint8
from adl.errors import AdlError
from adl.kernels import KERNEL_NAMES, synthetic_kernel


def reference_degrade_float(image: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """(I_HR ∗ k)↓s by the letter of method.md §1, in float64, without torch.

    LR pixel (i, j) is centred on HR (s·i + (s−1)/2, s·j + (s−1)/2) and the kernel's centre is
    ((K−1)/2, (K−1)/2), so tap (a, b) reads HR (s·i + (s−1)/2 − (Kh−1)/2 + a, ...). Reads outside
    the image take the nearest edge pixel.
    """
    h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
    hr = image[:h, :w].astype(np.float64)
    kh, kw = kernel.shape
    shift_y, shift_x = (scale - 1) / 2 - (kh - 1) / 2, (scale - 1) / 2 - (kw - 1) / 2
    assert shift_y == int(shift_y) and shift_x == int(shift_x), "kernel does not fit the grid"
    margin = max(kh, kw) + scale
    padded = np.pad(hr, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    out = np.zeros((h // scale, w // scale, hr.shape[2]))
    rows0 = scale * np.arange(h // scale) + int(shift_y) + margin
    cols0 = scale * np.arange(w // scale) + int(shift_x) + margin
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * padded[np.ix_(rows0 + a, cols0 + b)]
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _random_kernel(shape: tuple[int, int], seed: int) -> np.ndarray:
    k = np.random.default_rng(seed).random(shape) ** 3  # peaked and lopsided, so a flip or shift shows
    return k / k.sum()


IMAGE = data.chelsea()[40:137, 100:231]  # 97x131: odd sizes exercise the crop to a multiple of s

CASES = [(name, scale) for scale in (2, 4) for name in KERNEL_NAMES]


@pytest.mark.parametrize("name,scale", CASES)
def test_degrade_matches_reference_for_synthetic_kernels(name, scale):
    kernel = synthetic_kernel(name, scale)
    ours = degrade(IMAGE, kernel, scale)
    ref = np.clip(np.round(reference_degrade_float(IMAGE, kernel, scale)), 0, 255).astype(np.uint8)
    assert ours.shape == ref.shape
    assert _psnr(ours, ref) > 45


@pytest.mark.parametrize("scale,shape", [(2, (6, 8)), (4, (12, 8)), (3, (5, 7))])
def test_apply_kernel_matches_reference_for_asymmetric_user_kernels(scale, shape):
    kernel = _random_kernel(shape, seed=scale)
    hr = crop_to_scale(IMAGE, scale)
    x = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double()
    ours = apply_kernel(x, kernel, scale)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, reference_degrade_float(hr, kernel, scale), atol=1e-9, rtol=0)
    assert _psnr(degrade(IMAGE, kernel, scale), np.round(reference_degrade_float(IMAGE, kernel, scale))) > 45


@pytest.mark.parametrize("scale", [2, 4])
def test_output_size_floors_odd_sizes(scale):
    out = degrade(IMAGE, synthetic_kernel("k2", scale), scale)
    assert out.shape == (97 // scale, 131 // scale, 3)
    assert out.dtype == np.uint8


def test_delta_kernels_pick_the_grid_phase_the_convention_implies():
    """A size-s kernel covers exactly the s×s block of its LR pixel; a 2×2 delta at (1, 1) picks its
    bottom-right pixel. A 4×4 kernel at ×2 starts one HR pixel earlier, so its tap (1, 1) is the
    block's top-left pixel and tap (2, 2) its bottom-right one."""
    hr = crop_to_scale(IMAGE, 2)
    for size, tap, phase in [(2, 0, 0), (2, 1, 1), (4, 1, 0), (4, 2, 1)]:
        kernel = np.zeros((size, size))
        kernel[tap, tap] = 1.0
        np.testing.assert_array_equal(degrade(hr, kernel, 2), hr[phase::2, phase::2])


@pytest.mark.parametrize("scale", [2, 4])
def test_box_kernel_is_average_pooling(scale):
    """method.md §1: the grid is centred like s×s average pooling."""
    hr = crop_to_scale(IMAGE, scale).astype(np.float64)
    x = torch.from_numpy(hr).permute(2, 0, 1)[None]
    ours = apply_kernel(x, np.full((scale, scale), 1.0 / scale**2), scale)
    pooled = torch.nn.functional.avg_pool2d(x, scale)
    torch.testing.assert_close(ours, pooled, atol=1e-12, rtol=0)


def test_symmetric_kernel_does_not_shift_the_image():
    """A wide centred kernel and the matching box must agree on a linear ramp (no sub-pixel shift)."""
    ramp = np.add.outer(np.arange(64.0), 2 * np.arange(64.0))[None, None]
    x = torch.from_numpy(ramp)
    gauss = apply_kernel(x, synthetic_kernel("k2", 4), 4)
    box = torch.nn.functional.avg_pool2d(x, 4)
    inner = (..., slice(5, -5), slice(5, -5))
    torch.testing.assert_close(gauss[inner], box[inner], atol=1e-9, rtol=0)


def test_image_smaller_than_the_kernel_replicates_edges():
    tiny = IMAGE[:5, :7]
    kernel = synthetic_kernel("k4", 4)  # 40x40 on a 4x4 crop
    ours = degrade(tiny, kernel, 4)
    assert ours.shape == (1, 1, 3)
    ref = np.round(reference_degrade_float(tiny, kernel, 4))
    assert np.abs(ours.astype(np.float64) - ref).max() <= 1


def test_image_smaller_than_the_scale_is_an_error():
    with pytest.raises(AdlError, match="smaller than the scale"):
        degrade(IMAGE[:3, :10], synthetic_kernel("k1", 4), 4)


def test_apply_kernel_rejects_misfits():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="does not fit"):
        apply_kernel(x, np.ones((3, 3)) / 9, 2)
    with pytest.raises(ValueError, match="not a multiple"):
        apply_kernel(torch.zeros(1, 3, 9, 8), np.ones((2, 2)) / 4, 2)


def test_tensor_round_trip_rounds_and_clips():
    image = IMAGE[:4, :6]
    assert np.array_equal(to_uint8(to_tensor(image)), image)
    x = torch.tensor([-3.0, 0.5, 1.5, 254.6, 300.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(x)[0, :, 0].tolist() == [0, 0, 2, 255, 255]
