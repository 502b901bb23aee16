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


# -- issue 12: one rule for deep and integer images, each mode against a hand-made file -------------
def _png16(path, samples: np.ndarray, filters: list[int], interlace: int = 0) -> None:
    """A 16-bit RGB(A) PNG written by hand, row y filtered with filters[y % len(filters)] (PNG spec §9).
    Filtering uses only the raw bytes, so this encoder is independent of the decoder under test."""
    import struct
    import zlib

    h, w, c = samples.shape
    raw = samples.astype(">u2").view(np.uint8).reshape(h, w * c * 2).astype(np.int32)
    bpp = 2 * c
    rows = []
    for y in range(h):
        x = raw[y]
        a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        b = raw[y - 1] if y else np.zeros_like(x)
        cc = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
        kind = filters[y % len(filters)]
        p = a + b - cc
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, cc))
        predictor = [np.zeros_like(x), a, b, (a + b) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((x - predictor) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, interlace)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_png_is_rounded_not_truncated_under_every_filter(tmp_path, channels, caplog):
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, (10, 7, channels), dtype=np.uint16)
    samples[0, 3, :3] = [65535, 385, 386]  # 385/257 = 1.498 -> 1; 386/257 = 1.502 -> 2 (v >> 8 gives 1 and 1)
    path = tmp_path / "deep.png"
    _png16(path, samples, filters=[0, 1, 2, 3, 4])
    with caplog.at_level(logging.WARNING, logger="adl"):
        out = read_image(path)
        read_image(path)
    want = np.round(samples[..., :3].astype(np.float64) / 257).astype(np.uint8)
    np.testing.assert_array_equal(out, want)
    assert out[0, 3].tolist() == [255, 1, 2]
    assert [r.getMessage() for r in caplog.records].count("converting 16-bit colour PNGs to 8-bit RGB (logged once)") == 1


def test_interlaced_16_bit_colour_png_is_refused(tmp_path):
    path = tmp_path / "adam7.png"
    _png16(path, np.zeros((4, 4, 3), np.uint16), [0], interlace=1)
    with pytest.raises(AdlError, match="adam7.png: interlaced"):
        read_image(path)


def test_32_bit_integer_tiff_is_refused_not_blackened(tmp_path):
    """Before issue 12 a mode-I TIFF holding 0..232 was divided by 257 and came out black."""
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 100, 232]], dtype=np.int32), mode="I").save(path)
    with pytest.raises(AdlError, match="int32.tif: 32-bit integer image.*save it as 8- or 16-bit"):
        read_image(path)


@pytest.mark.parametrize("mode, make, want", [
    ("L", lambda: Image.fromarray(np.array([[0, 7, 255]], np.uint8)), [[0] * 3, [7] * 3, [255] * 3]),
    ("1", lambda: Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1"), [[0] * 3, [255] * 3, [0] * 3]),
    ("LA", lambda: Image.fromarray(np.array([[[9, 0], [200, 255], [3, 17]]], np.uint8), mode="LA"),
     [[9] * 3, [200] * 3, [3] * 3]),
    ("RGBA", lambda: Image.fromarray(np.array([[[1, 2, 3, 0], [4, 5, 6, 255], [7, 8, 9, 80]]], np.uint8)),
     [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
    ("I;16", lambda: Image.fromarray(np.array([[0, 385, 386]], np.uint16)), [[0] * 3, [1] * 3, [2] * 3]),
])
def test_each_mode_against_a_hand_made_image(tmp_path, mode, make, want):
    img = make()
    assert img.mode == mode
    img.save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_image(tmp_path / "x.png"), np.array([want], np.uint8))
