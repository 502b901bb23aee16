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


# -- (d) noisy generation ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """8 small HR photo crops, a width-4 G with fixed random weights, its ONNX export."""
    from adl.downsampler.apply import CHECKPOINT_KIND
    from adl.nets import Downsampler

    root = tmp_path_factory.mktemp("noisy_generate")
    for k, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        image = getattr(data, name)()[..., :3]
        for j in range(2):
            write_png(root / "hr" / f"{2 * k + j:02d}_{name}.png", image[40 * j : 40 * j + 36, 30 * j : 30 * j + 40])
    run = root / "run"
    run.mkdir()
    torch.manual_seed(0)
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 4, "scale": 2}, "G": Downsampler(4).state_dict()},
               run / "checkpoint.pt")
    assert main(["-q", "export", "--checkpoint", str(run), "--output", str(root / "g.onnx")]) == 0
    return {"root": root, "hr": root / "hr", "run": run, "onnx": root / "g.onnx"}


def gen(model, hr, out, *extra) -> list[str]:
    return ["generate", "--model", str(model), "--hr", str(hr), "--output", str(out), *GEN, *map(str, extra)]


def lr_payload(folder: Path) -> np.ndarray:
    manifest = json.loads((folder / "manifest.json").read_text())
    return np.concatenate([h5py.File(folder / e["file"], "r")["lr"][()] for e in manifest["shards"]])


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.h5"))}


@pytest.mark.parametrize("mode", ["fit", "pool"])
def test_noisy_generation_adds_the_models_noise_deterministically(sets, tiny, tmp_path, mode):
    model = sets["gauss"] / "model.npz"
    clean, noisy, again = tmp_path / "clean", tmp_path / "noisy", tmp_path / "again"
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], clean)]) == 0
    for out in (noisy, again):
        assert main(["-q", *gen(tiny["onnx"], tiny["hr"], out, "--noise", model, "--noise-mode", mode)]) == 0
    assert shard_bytes(noisy) == shard_bytes(again)  # same seed and index, same noise
    diff = lr_payload(noisy).astype(np.float64) - lr_payload(clean)
    # The model's level here is ~0.97 σ (test above); clipping at 0/255 in the photos lowers it a little.
    assert 0.85 * SIGMA < diff.std() < 1.05 * SIGMA, diff.std()
    manifest = json.loads((noisy / "manifest.json").read_text())
    sha = load_noise_model(model).sha256
    assert manifest["noise"]["sha256"] == sha and manifest["noise"]["mode"] == mode
    assert json.loads((noisy / "generate.json").read_text())["noise"] == {"sha256": sha, "mode": mode}
    assert main(["-q", "verify-shards", str(noisy)]) == 0


def test_noisy_onnxruntime_and_torch_agree(sets, tiny, tmp_path):
    model = sets["gauss"] / "model.npz"
    by_ort, by_torch = tmp_path / "ort", tmp_path / "torch"
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], by_ort, "--noise", model)]) == 0
    assert main(["-q", *gen(tiny["run"], tiny["hr"], by_torch, "--noise", model, "--backend", "torch",
                             "--device", "cpu")]) == 0
    # Different noise would differ by ~σ√2 per value; the same noise leaves only G's float rounding.
    diff = np.abs(lr_payload(by_ort).astype(np.int16) - lr_payload(by_torch))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


SLOW_GENERATE = """
import sys, time
import adl.shards.backends as g
call = g.OnnxBackend.downsample
def slow(self, image):
    time.sleep(0.3)
    return call(self, image)
g.OnnxBackend.downsample = slow
from adl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_noisy_generation_resumes_after_sigkill_bit_identically(sets, tiny, tmp_path, capsys):
    extra = ["--noise", sets["sd"] / "model.npz", "--noise-mode", "pool"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], ref, *extra)]) == 0
    args = ["-q", *gen(tiny["onnx"], tiny["hr"], out, *extra)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_GENERATE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 60
    while not (out.exists() and list(out.glob("shard-*.record.json"))):
        assert proc.poll() is None, f"generation ended before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (out / "manifest.json").exists()
    assert len(shard_bytes(out)) < len(shard_bytes(ref))
    code, _, err = run_cli(capsys, args[1:])
    assert code == 0, err
    assert shard_bytes(out) == shard_bytes(ref)


# -- (e) JPEG LR sets ----------------------------------------------------------------------------------
def test_generated_lr_files_carry_the_lr_sets_tables(tiny, tmp_path, capsys):
    jpegs = tmp_path / "lr_jpeg"
    jpegs.mkdir()
    photo = data.coffee()[:48, :64]
    for k, quality in enumerate((70, 70, 70, 92)):  # a mixed set: the most common tables win
        Image.fromarray(photo).save(jpegs / f"{k}.jpg", quality=quality)
    with Image.open(jpegs / "0.jpg") as img:
        wanted = {k: list(v) for k, v in img.quantization.items()}
    out = tmp_path / "png"
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], out, "--format", "png", "--jpeg-like", jpegs)]) == 0
    # lr/ pairs with hr/ by name and extension, as BasicSR pairs them; lr_jpeg/ holds the JPEGs with the tables.
    pngs = sorted(p.name for p in (out / "lr").iterdir())
    assert pngs == sorted(p.name for p in (out / "hr").iterdir()) and len(pngs) == 16
    files = sorted((out / "lr_jpeg").iterdir())
    assert [f.stem for f in files] == [Path(n).stem for n in pngs] and all(f.suffix == ".jpg" for f in files)
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and {k: list(v) for k, v in img.quantization.items()} == wanted
            assert np.array_equal(np.array(img.convert("RGB")), read_image(out / "lr" / f"{f.stem}.png"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["jpeg"]["files"] == 3 and manifest["jpeg"]["jpeg_files"] == 4
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    files[0].write_bytes(files[0].read_bytes()[:100])  # a truncated JPEG is named
    assert_one_error(capsys, ["verify-shards", out], str(files[0]))
    # Shards store the LR pixels a reader of those JPEG files sees: not G's output as it was.
    plain, shards = tmp_path / "plain", tmp_path / "shards"
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], plain)]) == 0
    assert main(["-q", *gen(tiny["onnx"], tiny["hr"], shards, "--jpeg-like", jpegs)]) == 0
    assert not np.array_equal(lr_payload(plain), lr_payload(shards))
    assert json.loads((shards / "manifest.json").read_text())["jpeg"]["tables_sha256"] == manifest["jpeg"]["tables_sha256"]


# -- bad input: one line, non-zero exit ----------------------------------------------------------------
def test_lr_set_too_textured_or_too_small_for_a_noise_model(sets, tmp_path, capsys):
    rng = np.random.default_rng(0)
    textured, small = tmp_path / "textured", tmp_path / "small"
    for k in range(3):  # white noise of full range: no flat neighbourhood anywhere
        write_png(textured / f"{k}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    write_png(small / "00.png", read_image(sets["gauss"] / "noisy" / "00.png")[:20, :20])
    for noisy in (textured, small):
        assert main(["-q", "denoise", "--input", str(noisy), "--output", str(noisy) + "_d", "--method", "wavelet"]) == 0
        assert_one_error(capsys, ["noise-model", "--noisy", noisy, "--clean", f"{noisy}_d", "--output",
                                  tmp_path / "m.npz", "--scale", "2", "--patch", "16"], noisy, "too small or too textured")
    assert not (tmp_path / "m.npz").exists()


def test_noise_model_for_another_scale_or_channel_count_or_damaged(sets, tiny, tmp_path, capsys):
    model = load_noise_model(sets["gauss"] / "model.npz")
    x4 = tmp_path / "x4.npz"
    model.meta = {**model.meta, "scale": 4}
    save_noise_model(model, x4)
    assert_one_error(capsys, gen(tiny["onnx"], tiny["hr"], tmp_path / "a", "--noise", x4), x4, "×4", "--scale 2")
    gray = tmp_path / "gray.npz"
    model.meta = {**model.meta, "scale": 2, "channels": 1}
    model.pool, model.a, model.b = model.pool[..., :1], model.a[:1], model.b[:1]
    save_noise_model(model, gray)
    assert_one_error(capsys, gen(tiny["onnx"], tiny["hr"], tmp_path / "b", "--noise", gray), gray, "channel")
    raw = (sets["gauss"] / "model.npz").read_bytes()
    for name, damaged in (("flipped", bytearray(raw)), ("truncated", raw[: len(raw) // 2]), ("text", b"hello")):
        if name == "flipped":
            damaged[len(raw) // 2] ^= 0xFF
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(bytes(damaged))
        assert_one_error(capsys, gen(tiny["onnx"], tiny["hr"], tmp_path / name, "--noise", bad), bad, "adl noise-model")
    assert not (tmp_path / "a").exists() and not (tmp_path / "flipped").exists()


def test_jpeg_like_without_jpegs_is_refused(sets, tiny, tmp_path, capsys):
    assert_one_error(capsys, gen(tiny["onnx"], tiny["hr"], tmp_path / "o", "--jpeg-like", sets["clean"]),
                     "--jpeg-like", "no JPEG")


# -- item 4: the noisy protocol's LR sets -------------------------------------------------------------
def degraded_pair(tmp_path, capsys, law: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean LR, noisy LR) of scikit-image's astronaut at ×2 on k3, as float64 pixel arrays."""
    hr = tmp_path / "hr"
    if not hr.exists():
        write_png(hr / "astronaut.png", data.astronaut())
    base = ["degrade", "--input", hr, "--scale", "2", "--kernel", "k3"]
    assert run_cli(capsys, [*base, "--output", tmp_path / "clean"])[0] == 0
    out = tmp_path / f"noisy-{law}-{seed}"
    assert run_cli(capsys, [*base, "--output", out, "--noise", law, "--seed", seed])[0] == 0
    return (read_image(tmp_path / "clean" / "astronaut.png").astype(np.float64),
            read_image(out / "astronaut.png").astype(np.float64))


def test_degrade_adds_gaussian_noise_of_the_given_level_seeded(tmp_path, capsys):
    clean, noisy = degraded_pair(tmp_path, capsys, "gaussian:5", 1)
    inside = (clean > 15) & (clean < 240)  # where clipping at 0 or 255 cannot shrink the noise
    residual = (noisy - clean)[inside]
    # Two roundings add 2/12 level² to 25: σ ≈ 5.02 over 196,608 values; 2 % fails a wrong σ or a missing √.
    assert abs(residual.std() / np.sqrt(25 + 2 / 12) - 1) < 0.02, residual.std()
    assert abs(residual.mean()) < 0.05
    assert np.array_equal(degraded_pair(tmp_path, capsys, "gaussian:5", 1)[1], noisy)  # same seed, same bytes
    assert not np.array_equal(degraded_pair(tmp_path, capsys, "gaussian:5", 2)[1], noisy)


def test_degrade_adds_signal_dependent_noise_of_the_given_law(tmp_path, capsys):
    clean, noisy = degraded_pair(tmp_path, capsys, "poisson-gaussian:0.3,4", 0)
    # The variance per intensity bin against the clean intensity: a straight line of slope a, intercept b.
    centres, variances = [], []
    for low in range(20, 230, 15):
        inside = (clean >= low) & (clean < low + 15)
        if inside.sum() > 2000:
            centres.append(clean[inside].mean())
            variances.append((noisy - clean)[inside].var() - 2 / 12)
    a, b = np.polyfit(centres, variances, 1)
    assert abs(a - 0.3) < 0.03 and abs(b - 4) < 3, (a, b)


@pytest.mark.parametrize("law", ["gauss:5", "gaussian:-1", "gaussian:5,1", "poisson-gaussian:0.3"])
def test_degrade_refuses_a_malformed_noise_law(tmp_path, capsys, law):
    write_png(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert_one_error(capsys, ["degrade", "--input", tmp_path / "hr", "--output", tmp_path / "out", "--scale", "2",
                              "--kernel", "k0", "--noise", law], "--noise", law, "gaussian:SIGMA")
    assert not (tmp_path / "out").exists()
