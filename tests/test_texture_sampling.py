"""--patch-sampling texture (issue 16): crops drawn with probability proportional to their mean
gradient magnitude, deterministically per (seed, stream, n)."""

from __future__ import annotations

import numpy as np
import pytest

from adl.downsampler.patches import (
    TextureCrops,
    UniformCrops,
    UnpairedPatches,
    crop_texture,
)


def independent_texture(image: np.ndarray, y: int, x: int, patch: int) -> float:
    """The crop's mean |∇L|, written out pixel by pixel (forward differences, 0 past the image's edge)."""
    lum = image.astype(float).mean(axis=2)
    h, w = lum.shape
    total = 0.0
    for i in range(y, y + patch):
        for j in range(x, x + patch):
            dx = lum[i, j + 1] - lum[i, j] if j + 1 < w else 0.0
            dy = lum[i + 1, j] - lum[i, j] if i + 1 < h else 0.0
            total += (dx * dx + dy * dy) ** 0.5
    return total / patch**2


def half_flat(size: int, seed: int) -> np.ndarray:
    """Left half one grey level, right half noise: only crops reaching the right half have texture."""
    image = np.full((size, size, 3), 90, np.uint8)
    image[:, size // 2 :] = np.random.default_rng(seed).integers(0, 256, (size, size - size // 2, 3))
    return image


def test_weights_are_the_crops_mean_gradient_magnitude():
    image = np.random.default_rng(0).integers(0, 256, (14, 17, 3)).astype(np.uint8)
    for step in (1, 3):
        weights = crop_texture(image, 6, step)
        ys, xs = range(0, 14 - 6 + 1, step), range(0, 17 - 6 + 1, step)
        assert weights.shape == (len(ys), len(xs))
        expected = [[independent_texture(image, y, x, 6) for x in xs] for y in ys]
        np.testing.assert_allclose(weights, expected, rtol=1e-9, atol=1e-9)


def test_sampled_crops_follow_the_gradient_magnitude():
    images = [half_flat(12, 1), np.full((12, 12, 3), 7, np.uint8), half_flat(10, 2)]
    crops = TextureCrops(images, 8)  # step 1: every position is a grid cell
    expected = {(n, y, x): independent_texture(im, y, x, 8)
                for n, im in enumerate(images) for y in range(im.shape[0] - 7) for x in range(im.shape[1] - 7)}
    total = sum(expected.values())
    draws = 20000
    counts: dict = {}
    for i in range(draws):
        key = crops(np.random.default_rng([3, 0, i]))
        counts[key] = counts.get(key, 0) + 1
    assert all(expected[key] > 0 for key in counts)  # flat crops (the grey image's, the left columns') never
    for key, weight in expected.items():
        p = weight / total
        assert abs(counts.get(key, 0) / draws - p) < 4 * (p * (1 - p) / draws) ** 0.5 + 1e-3, key


def test_texture_sampling_is_a_pure_function_of_seed_stream_and_index():
    hr, lr = [half_flat(64, 3), half_flat(80, 4)], [half_flat(32, 5), half_flat(40, 6)]
    a = UnpairedPatches(hr, lr, 32, 16, seed=7, sampling="texture")
    b = UnpairedPatches(hr, lr, 32, 16, seed=7, sampling="texture")
    for index in (0, 5, 123456):
        for x, y in zip(a[index], b[index]):
            assert np.array_equal(x.numpy(), y.numpy())
    other = UnpairedPatches(hr, lr, 32, 16, seed=8, sampling="texture")
    assert any(not np.array_equal(a[i][0].numpy(), other[i][0].numpy()) for i in range(10))


def test_a_set_without_texture_is_sampled_uniformly():
    images = [np.full((20, 24, 3), 50, np.uint8)]
    flat, uniform = TextureCrops(images, 8), UniformCrops(images, 8)
    for i in range(20):
        assert flat(np.random.default_rng([1, 1, i])) == uniform(np.random.default_rng([1, 1, i]))


def test_uniform_sampling_is_unchanged():
    """--patch-sampling uniform draws exactly what the sampler drew before the option existed."""
    images = [half_flat(40, 8), half_flat(50, 9)]
    patches = UnpairedPatches(images, images, 16, 8, seed=0)
    rng = np.random.default_rng([0, 0, 3])
    n = int(rng.integers(2))
    y, x = int(rng.integers(images[n].shape[0] - 15)), int(rng.integers(images[n].shape[1] - 15))
    assert np.array_equal(patches[3][0].numpy(), images[n][y : y + 16, x : x + 16].transpose(2, 0, 1))


def test_grid_offsets_stay_inside_the_image():
    images = [half_flat(70, 10)]
    crops = TextureCrops(images, 64)  # step 4 over 7 positions: the last cell is cut short
    for i in range(300):
        _, y, x = crops(np.random.default_rng([0, 1, i]))
        assert 0 <= y <= 6 and 0 <= x <= 6


@pytest.mark.parametrize("kind", ["uniform", "texture"])
def test_both_kinds_give_patches_of_the_asked_size(kind):
    images = [half_flat(40, 11)]
    hr, lr = UnpairedPatches(images, images, 32, 16, seed=0, sampling=kind)[0]
    assert hr.shape == (3, 32, 32) and lr.shape == (3, 16, 16)
