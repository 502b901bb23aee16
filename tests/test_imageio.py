"""Image reading, writing, listing and pairing (method.md §1 pixel conventions)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from skimage import data

from adl import imageio
from adl.errors import AdlError
from adl.imageio import list_images, pair_by_stem, read_image, write_png

RGB = data.astronaut()[:24, :32].copy()


@pytest.fixture(autouse=True)
def fresh_conversion_log(monkeypatch):
    # Conversions are logged once per process; each test starts from a clean slate.
    monkeypatch.setattr(imageio, "_logged_conversions", set())


@pytest.mark.parametrize("suffix,options", [(".png", {}), (".webp", {"lossless": True}), (".tif", {}), (".tiff", {})])
def test_lossless_formats_read_back_exactly(tmp_path, suffix, options):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(RGB).save(path, **options)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_reads_close_to_the_original(tmp_path, suffix):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(RGB).save(path, quality=100, subsampling=0)
    out = read_image(path)
    assert out.shape == RGB.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - RGB).mean() < 2


def test_grayscale_is_expanded_to_rgb_and_logged_once(tmp_path, caplog):
    gray = RGB[..., 0]
    for name in ("a.png", "b.png"):
        Image.fromarray(gray).save(tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="adl.imageio"):
        out = read_image(tmp_path / "a.png")
        read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))
    assert sum("grayscale" in r.getMessage() for r in caplog.records) == 1


def test_alpha_is_dropped_without_touching_colour(tmp_path):
    rgba = np.concatenate([RGB, np.full(RGB.shape[:2] + (1,), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), RGB)


def test_palette_image_gives_palette_colours(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    expected = np.array([[[255, 0, 0], [0, 255, 0]], [[10, 20, 30], [0, 255, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_is_scaled_to_8_bits(tmp_path, suffix):
    values = np.array([[0, 65535, 257 * 100, 257 * 37 + 100]], dtype=np.uint16)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    out = read_image(path)
    assert out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == [0, 255, 100, 37]
    assert np.all(out == out[..., :1])


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(AdlError, match="garbage.png"):
        read_image(garbage)
    Image.fromarray(RGB).save(tmp_path / "whole.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    with pytest.raises(AdlError, match="truncated.png"):
        read_image(truncated)
    with pytest.raises(AdlError, match="nowhere.png: no such file"):
        read_image(tmp_path / "nowhere.png")


def test_list_images_sorted_skipping_other_files_with_one_warning(tmp_path, caplog):
    for name in ("b.png", "a.JPG", "c.webp", "10.tif"):
        Image.fromarray(RGB).save(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "kernel.npy").write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    with caplog.at_level(logging.WARNING, logger="adl.imageio"):
        names = [p.name for p in list_images(tmp_path)]
    assert names == ["10.tif", "a.JPG", "b.png", "c.webp"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ignored 2 file(s)" in warnings[0].getMessage()


def test_list_images_errors_on_empty_or_missing_folder(tmp_path):
    with pytest.raises(AdlError, match="no images found"):
        list_images(tmp_path, what="--hr")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(AdlError, match="--hr .*no images found"):
        list_images(tmp_path, what="--hr")
    with pytest.raises(AdlError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_write_png_round_trips_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "out" / "img.png"
    write_png(target, RGB)
    write_png(target, RGB[::-1].copy())  # overwrite in place
    assert [p.name for p in target.parent.iterdir()] == ["img.png"]
    np.testing.assert_array_equal(read_image(target), RGB[::-1])
    with Image.open(target) as img:
        assert img.format == "PNG" and img.mode == "RGB"


def test_write_png_failure_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_png(tmp_path / "bad.png", RGB.astype(np.float32))
    with pytest.raises(TypeError):
        write_png(tmp_path / "bad.png", np.zeros((2, 2, 7), np.uint8))  # PIL cannot encode 7 channels
    assert list(tmp_path.iterdir()) == []


def test_pair_by_stem_pairs_across_suffixes_and_names_the_unpaired(tmp_path):
    hr = [tmp_path / "hr" / n for n in ("0801.png", "0802.png")]
    lr = [tmp_path / "lr" / n for n in ("0802.jpg", "0801.png")]
    assert pair_by_stem(hr, lr, "--hr", "--lr") == [(hr[0], lr[1]), (hr[1], lr[0])]
    with pytest.raises(AdlError, match=r"0802.png: no file with the same name in --lr"):
        pair_by_stem(hr, lr[1:], "--hr", "--lr")
    with pytest.raises(AdlError, match=r"0803.png: no file with the same name in --hr"):
        pair_by_stem(hr, lr + [tmp_path / "lr" / "0803.png"], "--hr", "--lr")
