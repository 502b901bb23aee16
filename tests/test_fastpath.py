"""The speed levers (adl.fastpath, docs/performance.md), checked on CPU against the exact path.

GPU speed is measured by the benchmarks; here each lever must give what the exact path gives:
the same patches from the device-resident sampler, bit-identical training with it, low-precision
training close to fp32 (and really engaged), fp16/bf16 generation within one 8-bit level,
compiled generation equal to eager, and shard writers in other processes writing the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_error
from skimage import data

from adl.cli import main
from adl.downsampler.patches import ResidentImages, UnpairedPatches, UnpairedPositions
from adl.errors import AdlError
from adl.fastpath import FastPath, resolve_fast_path
from adl.imageio import read_image, write_png
from adl.nets import Downsampler

TINY = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4", "--data-loss", "adl",
        "--warmup", "2", "--update-every", "2", "--kernel-size", "8", "--retrieval-images", "2",
        "--log-every", "2", "--checkpoint-every", "4", "--device", "cpu"]


def train(sets, out: Path, iterations: int, *extra) -> dict:
    assert main(["-q", "train-downsampler", "--hr", str(sets["hr"]), "--lr", str(sets["lr"]), "--output", str(out),
                 "--iterations", str(iterations), *TINY, *extra]) == 0
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)


# -- choosing the levers ---------------------------------------------------------------------------
def test_auto_is_the_exact_path_on_cpu_and_every_lever_on_cuda():
    cpu = resolve_fast_path("auto", "auto", torch.device("cpu"), training=True)
    assert cpu.describe() == {"precision": "fp32", "channels_last": False, "compile": "off", "fused_adam": False}
    assert cpu.dtype is None
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    train_fast = resolve_fast_path("auto", "auto", cuda, training=True)
    assert train_fast.describe() == {"precision": "bf16", "channels_last": True, "compile": "default",
                                     "fused_adam": True}
    assert resolve_fast_path("auto", "auto", cuda, training=False).dtype is torch.float16
    assert resolve_fast_path("auto", "cudagraphs", cuda, training=True).compile_mode == "reduce-overhead"
    exact = resolve_fast_path("fp32", "auto", cuda, training=True)
    assert exact.describe() == {"precision": "fp32", "channels_last": False, "compile": "off", "fused_adam": False}
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize(("precision", "compile", "training", "flag"), [
    ("fp16", "auto", True, "--precision fp16"),  # fp16 training would need loss scaling
    ("fp64", "auto", False, "--precision fp64"),
    ("auto", "max", True, "--compile max"),
    ("auto", "cudagraphs", True, "--compile cudagraphs"),  # CUDA graphs on a CPU device
])
def test_impossible_levers_are_refused_by_name(precision, compile, training, flag):
    with pytest.raises(AdlError, match=flag):
        resolve_fast_path(precision, compile, torch.device("cpu"), training=training)


# -- patches cut on the device ---------------------------------------------------------------------
def test_resident_images_cut_exactly_the_patches_of_the_host_sampler():
    rng = np.random.default_rng(3)
    hr = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((70, 90), (64, 64), (101, 67))]
    lr = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 45), (33, 50))]
    host = UnpairedPatches(hr, lr, 48, 24, seed=5)
    positions = UnpairedPositions([im.shape for im in hr], [im.shape for im in lr], 48, 24, seed=5)
    batch = torch.stack([positions[i] for i in range(40)])
    device_hr = ResidentImages(hr, torch.device("cpu")).crop(batch[:, 0], 48)
    device_lr = ResidentImages(lr, torch.device("cpu")).crop(batch[:, 1], 24)
    for i in range(40):
        want_hr, want_lr = host[i]
        assert torch.equal(device_hr[i], want_hr) and torch.equal(device_lr[i], want_lr), i
    assert len({tuple(p) for p in batch[:, 0].tolist()}) > 30  # the positions really vary


def test_device_sampling_trains_bit_identically_to_host_sampling(unpaired_sets, tmp_path, one_thread):
    host = train(unpaired_sets, tmp_path / "host", 5, "--sampling", "host")
    device = train(unpaired_sets, tmp_path / "device", 5, "--sampling", "device")
    for net in ("G", "D"):
        for key, value in host[net].items():
            assert torch.equal(value, device[net][key]), f"{net}.{key}"
    assert torch.equal(host["kernel"], device["kernel"])  # the ADL retrievals saw the same G
    summary = json.loads((tmp_path / "device" / "summary.json").read_text())
    assert summary["fast_path"]["sampling"] == "device" and summary["fast_path"]["precision"] == "fp32"


# -- low precision ---------------------------------------------------------------------------------
def test_bf16_training_stays_close_to_fp32_and_really_runs_in_bf16(unpaired_sets, tmp_path, one_thread):
    exact = train(unpaired_sets, tmp_path / "fp32", 3)
    fast = train(unpaired_sets, tmp_path / "bf16", 3, "--precision", "bf16")
    torch.manual_seed(0)  # the run's seed: both runs start from this G
    start = Downsampler(4).state_dict()
    moved = gap = 0.0
    for key, value in exact["G"].items():
        moved += float((value - start[key]).norm() ** 2)
        gap += float((fast["G"][key] - value).norm() ** 2)
    # Three Adam steps move each weight ~3·lr; bf16 must follow the same path, not a different one.
    assert 0 < gap ** 0.5 < 0.25 * moved ** 0.5, (gap ** 0.5, moved ** 0.5)
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert summary["fast_path"]["precision"] == "bf16"


def test_channels_last_and_fused_adam_follow_the_exact_path(unpaired_sets, tmp_path, one_thread):
    """The CUDA default's layout and optimiser levers, injected on CPU: fp32 throughout, so the weights
    after 3 steps may differ from the exact path's by rounding only."""
    from adl.downsampler.options import DownsamplerOptions
    from adl.downsampler.train import DownsamplerTrainer

    options = DownsamplerOptions(hr=str(unpaired_sets["hr"]), lr=str(unpaired_sets["lr"]), iterations=3,
                                 batch_size=2, lr_patch=32, width=4, disc_width=4, warmup=2, update_every=2,
                                 kernel_size=8, retrieval_images=2, log_every=2, checkpoint_every=4, device="cpu")
    exact = train(unpaired_sets, tmp_path / "exact", 3)
    levers = FastPath(device=torch.device("cpu"), precision="fp32", channels_last=True, compile_mode=None,
                      fused_adam=True)
    trainer = DownsamplerTrainer(options, tmp_path / "levers", fast=levers)
    trainer.run(3, 2, 4)
    assert trainer.opt_G.defaults["fused"] and trainer.G.head[1].weight.is_contiguous(memory_format=torch.channels_last)
    fast = torch.load(tmp_path / "levers" / "checkpoint.pt", map_location="cpu", weights_only=True)
    # Compare what G computes, not every weight: the biases ahead of InstanceNorm have no true
    # gradient, so Adam moves them by ±lr on rounding noise alone, on either path.
    x = torch.from_numpy(data.astronaut()[:64, :64]).permute(2, 0, 1)[None].float() / 127.5 - 1
    outputs = []
    for ckpt in (exact, fast):
        G = Downsampler(4)
        G.load_state_dict(ckpt["G"])
        with torch.no_grad():
            outputs.append(G(x))
    torch.manual_seed(0)  # the initial G, to show the runs moved much further than they differ
    with torch.no_grad():
        start = Downsampler(4)(x)
    gap, moved = (outputs[0] - outputs[1]).abs().max(), (outputs[0] - start).abs().max()
    assert gap < 0.01 * moved, (gap, moved)


def test_a_run_may_resume_under_another_precision(unpaired_sets, tmp_path, one_thread):
    """Precision and sampling are speed options: they may change on resume, like --device."""
    run = tmp_path / "run"
    train(unpaired_sets, run, 2, "--precision", "bf16")
    resumed = train(unpaired_sets, run, 4, "--precision", "fp32", "--sampling", "device")
    assert resumed["iteration"] == 4


def test_bad_speed_options_are_one_line_errors(unpaired_sets, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train-downsampler", "--hr", str(unpaired_sets["hr"]), "--lr", str(unpaired_sets["lr"]),
            "--output", str(out), "--iterations", "1", *TINY]
    assert_one_error(capsys, [*base, "--compile", "cudagraphs"], "--compile cudagraphs", code=1)
    assert_one_error(capsys, [*base, "--precision", "fp16"], "--precision", code=2)  # not a training choice
    assert not out.exists()


# -- generation --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    """A paper-width G with random weights (speed and rounding do not depend on training) and 3 photos."""
    root = tmp_path_factory.mktemp("fastgen")
    torch.manual_seed(0)
    run = root / "run"
    run.mkdir()
    torch.save({"kind": "adl-downsampler", "config": {"width": 64, "scale": 2}, "G": Downsampler(64).state_dict()},
               run / "checkpoint.pt")
    hr = root / "hr"
    for name in ("astronaut", "coffee", "chelsea"):
        write_png(hr / f"{name}.png", getattr(data, name)()[100:196, 100:196, :3])
    return {"root": root, "run": run, "hr": hr}


def generate_lr(world, out: Path, *extra) -> np.ndarray:
    assert main(["-q", "generate", "--model", str(world["run"]), "--hr", str(world["hr"]), "--output", str(out),
                 "--format", "png", "--full-images", "--backend", "torch", "--device", "cpu", *extra]) == 0
    return np.stack([read_image(p) for p in sorted((out / "lr").glob("*.png"))])


def test_fp16_generation_is_within_one_level_of_fp32_and_bf16_is_not(generation, tmp_path, one_thread):
    """The issue's bar: ≥ 99.9 % of LR pixels within one 8-bit level of the exact path. fp16 (the
    CUDA default) meets it; bf16's 8-bit mantissa does not (measured 97 %, up to 5 levels), so
    it is offered only by name."""
    exact = generate_lr(generation, tmp_path / "fp32", "--precision", "fp32")
    within = {}
    for precision in ("fp16", "bf16"):
        fast = generate_lr(generation, tmp_path / precision, "--precision", precision)
        diff = np.abs(exact.astype(int) - fast.astype(int))
        within[precision] = float(np.mean(diff <= 1))
        manifest = json.loads((tmp_path / precision / "manifest.json").read_text())
        assert manifest["options"]["precision"] == precision
    assert within["fp16"] >= 0.999, within
    assert within["bf16"] < within["fp16"], within


def test_compiled_generation_equals_eager(generation, tmp_path, one_thread):
    eager = generate_lr(generation, tmp_path / "eager", "--compile", "off")
    compiled = generate_lr(generation, tmp_path / "compiled", "--compile", "on")
    diff = np.abs(eager.astype(int) - compiled.astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) >= 0.999, (diff.max(), np.mean(diff == 0))


def test_shards_written_by_other_processes_are_byte_identical(generation, tmp_path, one_thread):
    outs = {}
    for writers in (0, 2):
        outs[writers] = tmp_path / f"w{writers}"
        assert main(["-q", "generate", "--model", str(generation["run"]), "--hr", str(generation["hr"]),
                     "--output", str(outs[writers]), "--patch", "32", "--patches-per-image", "3", "--shard-size", "2",
                     "--backend", "torch", "--device", "cpu", "--writers", str(writers)]) == 0
    names = sorted(p.name for p in outs[0].glob("shard-*.h5"))
    assert len(names) == 5 and names == sorted(p.name for p in outs[2].glob("shard-*.h5"))
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[2] / name).read_bytes(), name


def test_onnxruntime_refuses_torch_only_levers(generation, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    assert main(["-q", "export", "--checkpoint", str(generation["run"]), "--output", str(model)]) == 0
    out = tmp_path / "out"
    assert_one_error(capsys, ["generate", "--model", str(model), "--hr", str(generation["hr"]), "--output", str(out),
                              "--precision", "fp16"], "--precision fp16", "--backend torch")
    assert not out.exists()
