"""Data terms (method.md §4), GAN losses (§6) and ×4 repetition (§2), against independent truth.

Each reference below is written from the text of method.md in numpy/float64, without the
project's filtering helpers, and each data term is tested on the property that tells it
apart from the others.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adl.downsampler.apply import apply_downsampler, quantize
from adl.downsampler.losses import (
    DATA_LOSSES,
    DataTerm,
    discriminator_loss,
    generator_adversarial_loss,
)
from adl.kernels import synthetic_kernel


def rand_image(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1


def block_mean(x: np.ndarray, b: int) -> np.ndarray:
    """Mean of non-overlapping b×b blocks of an N×C×H×W array (H, W multiples of b)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).mean(axis=(3, 5))


def np64(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().astype(np.float64)


def loss(name: str, scale: int, hr: torch.Tensor, fake: torch.Tensor) -> float:
    return DataTerm(name, scale)(hr, fake).item()


def test_unknown_data_term_is_refused():
    assert set(DATA_LOSSES) == {"adl", "lfl", "lfl-gauss", "bicubic", "avgpool"}
    with pytest.raises(ValueError):
        DataTerm("l2", 2)


# --- LFL, box (eq. 4) --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_lfl_equals_block_means_l1(scale):
    hr = rand_image(2, 32 * scale, 48 * scale, seed=1)
    fake = rand_image(2, 32, 48, seed=2)
    expected = np.abs(block_mean(np64(fake), 16) - block_mean(np64(hr), 16 * scale)).mean()
    assert loss("lfl", scale, hr, fake) == pytest.approx(expected, abs=1e-6)


def zero_block_mean_pattern(shape: tuple[int, ...], b: int, seed: int) -> torch.Tensor:
    p = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    means = F.avg_pool2d(p, b)
    return p - F.interpolate(means, scale_factor=b, mode="nearest")


def test_lfl_is_blind_to_detail_that_keeps_16x16_block_means():
    hr = rand_image(1, 64, 64, seed=3)
    fake = rand_image(1, 32, 32, seed=4)
    pattern = zero_block_mean_pattern((1, 3, 32, 32), 16, seed=5)
    assert pattern.abs().max() > 1  # a big change of G(HR) ...
    term = DataTerm("lfl", 2)
    base = term(hr, fake).item()
    assert term(hr, fake + pattern).item() == pytest.approx(base, abs=1e-6)  # ... that LFL cannot see
    # The same pattern on HR at the HR block size is invisible too.
    hr_pattern = zero_block_mean_pattern((1, 3, 64, 64), 32, seed=6)
    assert term(hr + hr_pattern, fake).item() == pytest.approx(base, abs=1e-6)


def test_lfl_sees_a_change_of_one_block_mean():
    hr = rand_image(1, 64, 64, seed=3)
    fake = rand_image(1, 32, 32, seed=4)
    term = DataTerm("lfl", 2)
    base = term(hr, fake).item()
    bumped = fake.clone()
    bumped[0, 1, 16:, :16] += 0.3
    assert abs(term(hr, bumped).item() - base) > 1e-3
    # Whereas the pixel-wise terms do see a zero-mean pattern.
    pattern = zero_block_mean_pattern((1, 3, 32, 32), 16, seed=5)
    assert abs(loss("avgpool", 2, hr, fake + pattern) - loss("avgpool", 2, hr, fake)) > 1e-2


# --- LFL, Gaussian (impl) ---------------------------------------------------------------------


def gaussian_np(size: int, sigma: float) -> np.ndarray:
    c = (size - 1) / 2  # 7.5 for 16, 15.5 for 32
    r = np.arange(size) - c
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def strided_filter_np(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Non-overlapping weighted sums: each size×size block dotted with k (stride = size)."""
    n, c, h, w = x.shape
    b = k.shape[0]
    blocks = x.reshape(n, c, h // b, b, w // b, b)
    return np.einsum("ncyaxb,ab->ncyx", blocks, k)


@pytest.mark.parametrize("scale", [2, 4])
def test_lfl_gauss_equals_independent_gaussian_blocks(scale):
    hr = rand_image(2, 32 * scale, 48 * scale, seed=7)
    fake = rand_image(2, 32, 48, seed=8)
    lr_side = strided_filter_np(np64(fake), gaussian_np(16, 2.0))
    hr_side = strided_filter_np(np64(hr), gaussian_np(16 * scale, 2.0 * scale))
    expected = np.abs(lr_side - hr_side).mean()
    got = loss("lfl-gauss", scale, hr, fake)
    assert got == pytest.approx(expected, abs=1e-6)
    # Weighted, not plain, means: the box term gives a different value on the same pair.
    assert abs(got - loss("lfl", scale, hr, fake)) > 1e-3


def test_lfl_gauss_on_constant_images():
    colour = torch.tensor([0.2, -0.5, 0.9]).view(1, 3, 1, 1)
    hr = colour.expand(1, 3, 64, 64).clone()
    same = colour.expand(1, 3, 32, 32).clone()
    assert loss("lfl-gauss", 2, hr, same) == pytest.approx(0.0, abs=1e-6)
    other = same + torch.tensor([0.1, 0.0, -0.4]).view(1, 3, 1, 1)
    assert loss("lfl-gauss", 2, hr, other) == pytest.approx(0.5 / 3, abs=1e-6)


# --- bicubic baseline ---------------------------------------------------------------------------


def smooth_image_constant_border(size: int, border: int, seed: int) -> torch.Tensor:
    """A smooth random image that is constant within ``border`` pixels of every edge."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=g) * 1.6 - 0.8
    inner = F.interpolate(coarse, size=(size - 2 * border,) * 2, mode="bicubic", align_corners=True)
    r = torch.arange(size - 2 * border, dtype=torch.float32)
    t = torch.sin(math.pi * (r + 0.5) / (size - 2 * border)) ** 2  # fades to 0 at the edges
    window = (t[:, None] * t[None, :])[None, None]
    base = torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    img = base.expand(1, 3, size, size).clone()
    img[..., border:-border, border:-border] += window * (inner - base)
    return img


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_term_is_zero_for_torch_antialiased_bicubic(scale):
    # torch's antialiased bicubic renormalises weights at the border while our operator
    # replicates edges; on an image that is constant near the border the two must agree.
    hr = smooth_image_constant_border(32 * scale, 4 * scale, seed=9)
    fake = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    assert fake.shape[-1] == 32
    assert loss("bicubic", scale, hr, fake) < 1e-6
    # And it is not the box average (seen on a detailed image; the one above is too smooth).
    sharp = rand_image(1, 16 * scale, 16 * scale, seed=20)
    assert loss("bicubic", scale, sharp, F.avg_pool2d(sharp, scale)) > 1e-2


# --- average pooling baseline -------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_avgpool_term(scale):
    hr = rand_image(2, 16 * scale, 24 * scale, seed=10)
    assert loss("avgpool", scale, hr, F.avg_pool2d(hr, scale)) < 1e-7
    fake = rand_image(2, 16, 24, seed=11)
    expected = np.abs(np64(fake) - block_mean(np64(hr), scale)).mean()
    assert loss("avgpool", scale, hr, fake) == pytest.approx(expected, abs=1e-6)


# --- ADL (eq. 7) ----------------------------------------------------------------------------------


def degrade_np(hr: np.ndarray, k: np.ndarray, s: int) -> np.ndarray:
    """(HR ∗ k)↓s by the letter of method.md §1: LR i centred on HR s·i + (s−1)/2, kernel
    centre (K−1)/2, correlation (no flip), edge-replicated borders."""
    n, c, h, w = hr.shape
    kh, kw = k.shape
    oy, ox = (s - 1) / 2 - (kh - 1) / 2, (s - 1) / 2 - (kw - 1) / 2
    assert oy == int(oy) and ox == int(ox)
    m = max(kh, kw) + s
    padded = np.pad(hr, ((0, 0), (0, 0), (m, m), (m, m)), mode="edge")
    out = np.zeros((n, c, h // s, w // s))
    for i in range(h // s):
        for j in range(w // s):
            y0, x0 = s * i + int(oy) + m, s * j + int(ox) + m
            patch = padded[:, :, y0 : y0 + kh, x0 : x0 + kw]
            out[:, :, i, j] = (patch * k).sum(axis=(2, 3))
    return out


def asymmetric_kernel(size: int, seed: int) -> np.ndarray:
    """A positive kernel with no symmetry, so that a flip, transpose or shift shows."""
    rng = np.random.default_rng(seed)
    k = rng.random((size, size)) ** 3
    k[0, -1] += 2.0  # heavy top-right corner
    return k / k.sum()


def test_adl_term_needs_a_kernel():
    term = DataTerm("adl", 2)
    assert not term.has_kernel
    with pytest.raises(RuntimeError):
        term(rand_image(1, 32, 32, seed=0), rand_image(1, 16, 16, seed=1))


@pytest.mark.parametrize(
    "scale, kernel",
    [
        (2, "k3"),
        (2, "k4"),
        (2, "asym20"),
        (2, "asym6"),
        (4, "asym8"),
        (4, "k3"),
    ],
)
def test_adl_term_is_zero_for_the_kernel_degraded_image(scale, kernel):
    if kernel.startswith("asym"):
        k = asymmetric_kernel(int(kernel[4:]), seed=12)
    else:
        k = synthetic_kernel(kernel, scale)
    hr = rand_image(1, 12 * scale, 10 * scale, seed=13)
    fake = torch.from_numpy(degrade_np(np64(hr), k, scale)).float()
    term = DataTerm("adl", scale)
    term.set_kernel(k)
    assert term.has_kernel
    assert term(hr, fake).item() < 1e-5
    # Guard: the pair is not one that any kernel would fit, e.g. the bicubic one.
    assert loss("bicubic", scale, hr, fake) > 1e-2


def test_adl_term_detects_a_flipped_kernel():
    k = asymmetric_kernel(20, seed=14)
    hr = rand_image(1, 24, 24, seed=15)
    fake = torch.from_numpy(degrade_np(np64(hr), k, 2)).float()
    for wrong in (k[::-1, ::-1], k.T, np.roll(k, 2, axis=1)):
        term = DataTerm("adl", 2)
        term.set_kernel(np.ascontiguousarray(wrong))
        assert term(hr, fake).item() > 1e-2


def test_adl_term_is_nonzero_for_the_bicubic_image():
    hr = rand_image(1, 24, 24, seed=16)
    term = DataTerm("adl", 2)
    term.set_kernel(synthetic_kernel("k3", 2))
    bic = F.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    assert term(hr, bic).item() > 1e-2


def test_adl_kernel_accepts_float64_numpy_and_follows_the_module_device_and_dtype():
    term = DataTerm("adl", 2)
    term.set_kernel(synthetic_kernel("k3", 2))
    assert term.kernel.dtype == torch.float32 and term.kernel.shape == (20, 20)
    assert "kernel" in dict(term.named_buffers())


# --- GAN losses (vanilla, BCE on logits) ----------------------------------------------------------


def neg_log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log(1.0 / (1.0 + np.exp(-x)))


def neg_log_one_minus_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log(1.0 - 1.0 / (1.0 + np.exp(-x)))


def test_discriminator_loss_closed_form():
    g = torch.Generator().manual_seed(17)
    real = torch.randn(4, 1, 3, 3, generator=g) * 3
    fake = torch.randn(4, 1, 3, 3, generator=g) * 3
    expected = neg_log_sigmoid(np64(real)).mean() + neg_log_one_minus_sigmoid(np64(fake)).mean()
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-5)


def test_discriminator_loss_is_not_symmetric_in_its_arguments():
    real = torch.full((1, 1, 3, 3), 4.0)
    fake = torch.full((1, 1, 3, 3), -4.0)
    good, bad = discriminator_loss(real, fake).item(), discriminator_loss(fake, real).item()
    assert good == pytest.approx(2 * neg_log_sigmoid(np.float64(4.0)), rel=1e-5)
    assert bad == pytest.approx(2 * neg_log_sigmoid(np.float64(-4.0)), rel=1e-5)


def test_generator_adversarial_loss_closed_form_and_non_saturating():
    g = torch.Generator().manual_seed(18)
    fake = (torch.randn(4, 1, 3, 3, generator=g) * 3).requires_grad_(True)
    out = generator_adversarial_loss(fake)
    assert out.item() == pytest.approx(neg_log_sigmoid(np64(fake)).mean(), rel=1e-5)
    # Non-saturating: d/dx −log σ(x) = σ(x) − 1, so a confidently rejected fake still gets
    # a full-size gradient (the saturating log(1 − σ) would give almost none).
    x = torch.full((1, 1, 3, 3), -8.0, requires_grad=True)
    generator_adversarial_loss(x).backward()
    sig = 1 / (1 + math.exp(8.0))
    assert x.grad.flatten()[0].item() == pytest.approx((sig - 1) / 9, rel=1e-5)


# --- 8-bit quantisation and ×4 by repetition ----------------------------------------------------


def test_quantize_rounds_to_8_bit_levels():
    rng = np.random.default_rng(19)
    levels = rng.integers(0, 256, size=(1, 3, 8, 8)).astype(np.float64)
    offsets = rng.uniform(-0.45, 0.45, size=levels.shape)
    x64 = (levels + offsets) / 127.5 - 1
    x64[0, 0, 0, :2] = [-1.7, 1.4]  # out of range: clamped
    x = torch.from_numpy(x64).float()
    expected = np.clip(np.round((x64 + 1) * 127.5), 0, 255) / 127.5 - 1
    q = quantize(x)
    assert np.allclose(np64(q), expected, atol=1e-6)
    assert q[0, 0, 0, 0].item() == pytest.approx(-1.0) and q[0, 0, 0, 1].item() == pytest.approx(1.0)
    assert torch.equal(quantize(x, straight_through=True), q)


def test_quantize_straight_through_gradient_is_identity():
    x = (torch.rand(1, 3, 4, 4) * 2 - 1).requires_grad_(True)
    w = torch.randn(1, 3, 4, 4)
    (quantize(x, straight_through=True) * w).sum().backward()
    assert torch.equal(x.grad, w)
    y = x.detach().clone().requires_grad_(True)
    (quantize(y) * w).sum().backward()
    assert y.grad is None or torch.count_nonzero(y.grad) == 0  # plain rounding blocks gradients


def test_apply_downsampler_at_x2_and_x4_with_an_average_pooling_model():
    model = nn.AvgPool2d(2)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(apply_downsampler(model, x, 2), F.avg_pool2d(x, 2))
    y4 = apply_downsampler(model, x, 4)
    assert y4.shape == (1, 3, 8, 8)
    assert torch.allclose(y4, F.avg_pool2d(quantize(F.avg_pool2d(x, 2)), 2), atol=1e-7)
    # The rounding in between is real: without it the result is the plain 4×4 average.
    assert (y4 - F.avg_pool2d(x, 4)).abs().max() > 1e-4


def test_apply_downsampler_x4_straight_through_passes_gradients():
    model = nn.AvgPool2d(2)
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_(True)
    apply_downsampler(model, x, 4, straight_through=True).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 1 / 16))
