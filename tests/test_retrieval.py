"""Kernel retrieval (paper eq. 6, method.md §5): pairs made with a known kernel give it back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from adl.degradation import apply_kernel, crop_to_scale, degrade
from adl.downsampler import retrieval
from adl.downsampler.retrieval import (
    NormalEquations,
    luminance,
    retrieve_from_model,
    retrieve_from_pairs,
)
from adl.errors import AdlError
from adl.kernels import default_kernel_size, synthetic_kernel
from adl.metrics import kernel_similarity

ASTRONAUT = data.astronaut()


def _unit(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double() / 255


def _float_equations(hr: np.ndarray, kernel: np.ndarray, scale: int, size: int) -> NormalEquations:
    """Normal equations for HR against its unrounded float64 degradation."""
    x = _unit(crop_to_scale(hr, scale))
    equations = NormalEquations(size, scale)
    equations.add(luminance(x)[0, 0], luminance(apply_kernel(x, kernel, scale))[0, 0])
    return equations


def _write_pairs(folder, images, kernel, scale):
    (folder / "hr").mkdir()
    (folder / "lr").mkdir()
    pairs = []
    for i, image in enumerate(images):
        hr_path, lr_path = folder / "hr" / f"{i}.png", folder / "lr" / f"{i}.png"
        Image.fromarray(image).save(hr_path)
        Image.fromarray(degrade(image, kernel, scale)).save(lr_path)
        pairs.append((hr_path, lr_path))
    return pairs


def test_default_kernel_size():
    assert default_kernel_size(2) == 20 and default_kernel_size(4) == 40


def test_luminance_uses_bt601_weights():
    x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    out = luminance(x)
    assert out.shape == (2, 1, 5, 4)
    torch.testing.assert_close(out[:, 0], expected, atol=1e-15, rtol=0)


def test_unrounded_pairs_give_the_kernel_exactly():
    kernel = synthetic_kernel("k4", 2)
    fitted = _float_equations(ASTRONAUT[:192, :192], kernel, 2, 20).solve()
    # Only the clean-up (zeroing taps ≤ 1e-5, renormalising) separates the fit from the truth.
    np.testing.assert_allclose(fitted, kernel, atol=1e-4, rtol=0)
    assert kernel_similarity(fitted, kernel) > 0.9999


def test_flattening_order_matches_the_kernel_layout():
    """An asymmetric kernel comes back unflipped and untransposed."""
    # Taps stay well above the 1e-5 clean-up threshold, so the fit must match them all.
    kernel = np.random.default_rng(5).random((8, 8)) ** 2 + 0.05
    kernel /= kernel.sum()
    fitted = _float_equations(ASTRONAUT[:128, :128], kernel, 2, 8).solve()
    np.testing.assert_allclose(fitted, kernel, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", ["k3", "k4"])
def test_rounded_pairs_from_files_give_the_kernel(tmp_path, name):
    kernel = synthetic_kernel(name, 2)
    # Odd sizes exercise the crop to a multiple of s; crop=256 exercises the top-left crop.
    pairs = _write_pairs(tmp_path, [ASTRONAUT[:301, :263]], kernel, 2)
    fitted = retrieve_from_pairs(pairs, 2, 20, crop=256)
    assert fitted.shape == (20, 20) and fitted.sum() == pytest.approx(1.0)
    assert kernel_similarity(fitted, kernel) > 0.99


def test_rounded_pairs_at_x4_with_a_40_tap_kernel(tmp_path):
    kernel = synthetic_kernel("k4", 4)
    images = [ASTRONAUT, data.coffee(), data.chelsea()]
    pairs = _write_pairs(tmp_path, images, kernel, 4)
    fitted = retrieve_from_pairs(pairs, 4, 40, max_images=3)
    assert fitted.shape == (40, 40)
    assert kernel_similarity(fitted, kernel) > 0.99


def test_max_images_limits_the_pairs(tmp_path):
    kernel = synthetic_kernel("k3", 2)
    pairs = _write_pairs(tmp_path, [ASTRONAUT[:256, :256]], kernel, 2)
    pairs.append((tmp_path / "hr" / "missing.png", tmp_path / "lr" / "missing.png"))
    assert kernel_similarity(retrieve_from_pairs(pairs, 2, 20, max_images=1), kernel) > 0.99
    with pytest.raises(AdlError, match="missing.png"):
        retrieve_from_pairs(pairs, 2, 20)


def test_pair_size_mismatch_names_the_lr_file(tmp_path):
    hr_path, lr_path = tmp_path / "0801.png", tmp_path / "0801x2.png"
    Image.fromarray(ASTRONAUT[:101, :120]).save(hr_path)
    Image.fromarray(ASTRONAUT[:50, :61]).save(lr_path)
    with pytest.raises(AdlError, match=r"0801x2.png: LR size 61x50 .*0801.png \(120x100 .* needs LR 60x50"):
        retrieve_from_pairs([(hr_path, lr_path)], 2, 20)


def test_retrieve_from_model_recovers_the_kernel():
    kernel = synthetic_kernel("k3", 2)
    calls = []

    def downsampler(x: torch.Tensor) -> torch.Tensor:
        calls.append((x.dtype, tuple(x.shape), float(x.max())))
        return apply_kernel(x, kernel, 2)

    images = [ASTRONAUT[:161, :200], data.chelsea()[:150, :150]]
    fitted = retrieve_from_model(downsampler, images, 2, 20, crop=150)
    assert calls[0][:2] == (torch.float32, (1, 3, 150, 150)) and calls[0][2] <= 1.0
    assert kernel_similarity(fitted, kernel) > 0.999


def test_border_positions_are_dropped_and_interior_ones_kept():
    """Only LR pixels whose 20-tap window lies inside the HR image enter the fit."""
    scale, size = 2, 20
    hr = ASTRONAUT[:120, :100]
    x = _unit(hr)
    lr = apply_kernel(x, synthetic_kernel("k4", 2), scale)
    pad = (size - scale) // 2
    inside = lambda n: [i for i in range(n // scale) if scale * i - pad >= 0 and scale * i - pad + size <= n]
    rows, cols = inside(120), inside(100)
    border = torch.ones(lr.shape[2:], dtype=torch.bool)
    border[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = False

    def fit(target: torch.Tensor) -> NormalEquations:
        equations = NormalEquations(size, scale)
        equations.add(luminance(x)[0, 0], luminance(target)[0, 0])
        return equations

    clean = fit(lr)
    assert clean.rows == len(rows) * len(cols)
    garbage_border = lr.clone()
    garbage_border[..., border] = 0.5
    torch.testing.assert_close(fit(garbage_border).rhs, clean.rhs, atol=0, rtol=0)
    garbage_inside = lr.clone()
    garbage_inside[..., rows[0], cols[0]] += 0.1
    assert not torch.equal(fit(garbage_inside).rhs, clean.rhs)


def test_strips_add_up_to_the_whole(monkeypatch):
    kernel = synthetic_kernel("k1", 2)
    whole = _float_equations(ASTRONAUT[:96, :80], kernel, 2, 20)
    monkeypatch.setattr(retrieval, "STRIP_BYTES", 1)  # one LR row per strip
    strips = _float_equations(ASTRONAUT[:96, :80], kernel, 2, 20)
    assert strips.rows == whole.rows
    torch.testing.assert_close(strips.gram, whole.gram, atol=1e-9, rtol=1e-12)
    torch.testing.assert_close(strips.rhs, whole.rhs, atol=1e-9, rtol=1e-12)


def test_undetermined_systems_are_errors():
    kernel = synthetic_kernel("k1", 2)
    with pytest.raises(AdlError, match="more or larger images"):
        _float_equations(ASTRONAUT[:40, :40], kernel, 2, 20).solve()  # 11x11 LR pixels, 400 unknowns
    flat = np.full((128, 128, 3), 90, np.uint8)
    with pytest.raises(AdlError, match="singular"):
        _float_equations(flat, kernel, 2, 20).solve()
    # Constant rows say nothing about the kernel's horizontal profile.
    rows = np.random.default_rng(0).integers(0, 256, (128, 1, 1), dtype=np.uint8)
    stripes = np.broadcast_to(rows, (128, 128, 3))
    with pytest.raises(AdlError, match="singular"):
        _float_equations(stripes, kernel, 2, 20).solve()
    with pytest.raises(AdlError, match="kernel size 21"):
        NormalEquations(21, 2)
