"""Issue 18, run inside the BasicSR client environment (BasicSR 1.4.2 installed; tests/test_basicsr.py builds
it and runs this file there): AdlShardDataset against stock PairedImageDataset, LMDB output read by stock
BasicSR, and real BasicSR training runs from each of adl's three formats.

Not collected by the main suite (the name does not match test_*.py): it imports BasicSR.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from helpers import write_tiny_world

from adl.cli import main
from adl.errors import AdlError

REPO = Path(__file__).resolve().parents[1]
GEN = ["--patch", "16", "--patches-per-image", "2", "--shard-size", "5", "--workers", "1", "--seed", "0"]
SAMPLES, PATCH, SCALE = 24, 16, 2

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """12 HR crops, a width-4 G checkpoint, and its pairs in each format (same samples)."""
    root = tmp_path_factory.mktemp("basicsr")
    hr, run = write_tiny_world(root)
    out = {"root": root, "hr": hr, "run": run}
    for fmt in ("h5", "png", "lmdb"):
        out[fmt] = root / fmt
        assert main(["-q", "generate", "--model", str(run), "--hr", str(hr), "--output", str(out[fmt]), *GEN,
                     "--format", fmt]) == 0
    return out


def truth(made) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (lr, hr) uint8 RGB, read with h5py from the shards: what every format must deliver."""
    manifest = json.loads((made["h5"] / "manifest.json").read_text())
    pairs, g = {}, 0
    for entry in manifest["shards"]:
        with h5py.File(made["h5"] / entry["file"], "r") as f:
            for source, lr, hr in zip(f["source"].asstr()[()], f["lr"][()], f["hr"][()]):
                pairs[f"{source}_{g % 2:03d}"] = (lr, hr)
                g += 1
    return pairs


def shard_opt(made, **extra) -> dict:
    return {"name": "shards", "type": "AdlShardDataset", "dataroot": str(made["h5"]), "io_backend": {"type": "disk"},
            "phase": "train", "scale": SCALE, "gt_size": PATCH, "use_hflip": False, "use_rot": False, **extra}


def png_opt(made, **extra) -> dict:
    return {"name": "png", "type": "PairedImageDataset", "dataroot_gt": str(made["png"] / "hr"),
            "dataroot_lq": str(made["png"] / "lr"), "meta_info_file": str(made["png"] / "meta_info.txt"),
            "io_backend": {"type": "disk"}, "phase": "train", "scale": SCALE, "gt_size": PATCH, "use_hflip": False,
            "use_rot": False, **extra}


def lmdb_opt(made, **extra) -> dict:
    return {**png_opt(made, **extra), "name": "lmdb", "dataroot_gt": str(made["lmdb"] / "hr.lmdb"),
            "dataroot_lq": str(made["lmdb"] / "lr.lmdb"), "io_backend": {"type": "lmdb"}, "meta_info_file": None}


def build(opt: dict):
    """As BasicSR's training builds a dataset: by type, through the registry."""
    import adl.shards.basicsr  # noqa: F401, I001  (first: registers AdlShardDataset, shims torchvision for BasicSR)
    from basicsr.data import build_dataset

    return build_dataset(opt)


def items(dataset, seed: int = 0) -> list[dict]:
    random.seed(seed)  # BasicSR's crops and flips draw from Python's random
    return [dataset[i] for i in range(len(dataset))]


def same_items(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])
        assert Path(x["lq_path"]).stem == Path(y["lq_path"]).stem


# -- the six mismatches, each against stock PairedImageDataset on the same samples ----------
@pytest.mark.parametrize("extra", [
    {"gt_size": 8},  # 1: a random crop inside each stored patch, aligned to the scale
    {"gt_size": 8, "use_hflip": True, "use_rot": False},  # 3: flips only, no rotations
    {"gt_size": 12, "use_hflip": False, "use_rot": True},
    {"use_hflip": True, "use_rot": True, "phase": "val"},  # 3: nothing augmented outside train
    {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},  # 4
    {"color": "y", "gt_size": 8, "use_hflip": True},  # 4
], ids=["gt_size", "hflip_only", "rot_only", "val", "mean_std", "color_y"])
def test_items_equal_stock_paired_image_dataset(made, extra):
    ours, stock = build(shard_opt(made, **extra)), build(png_opt(made, **extra))
    a, b = items(ours), items(stock)
    same_items(a, b)
    crop = extra.get("gt_size", PATCH) if extra.get("phase", "train") == "train" else PATCH
    channels = 1 if extra.get("color") == "y" else 3
    assert a[0]["gt"].shape == (channels, crop, crop) and a[0]["lq"].shape == (channels, crop // 2, crop // 2)


def test_flips_follow_use_hflip_and_use_rot(made):
    """3: use_hflip without use_rot gives the identity and the horizontal flip only; val gives the identity."""
    pairs = truth(made)
    seen = set()
    flips = build(shard_opt(made, use_hflip=True, use_rot=False))
    random.seed(1)
    for _ in range(40):
        item = flips[0]
        hr = pairs[Path(item["gt_path"]).stem][1].astype(np.float32) / 255
        got = item["gt"].permute(1, 2, 0).numpy()
        seen.add("identity" if np.array_equal(got, hr) else "hflip" if np.array_equal(got, hr[:, ::-1]) else "other")
    assert seen == {"identity", "hflip"}
    val = build(shard_opt(made, use_hflip=True, use_rot=True, phase="val"))
    for i in range(len(val)):
        hr = pairs[Path(val[i]["gt_path"]).stem][1].astype(np.float32) / 255
        assert np.array_equal(val[i]["gt"].permute(1, 2, 0).numpy(), hr)


def test_gt_size_larger_than_the_patch_is_refused(made):
    with pytest.raises(AdlError, match=r"^AdlShardDataset option gt_size: 32 is larger than the 16x16 patches"):
        build(shard_opt(made, gt_size=32))
    with pytest.raises(AdlError, match="gt_size: 7 is not a positive multiple of the scale 2"):
        build(shard_opt(made, gt_size=7))


def test_scale_is_checked_against_the_manifest(made):
    """2: BasicSR's own dataset fails at once on a scale mismatch; so does ours, naming both scales."""
    with pytest.raises(AdlError, match=r"option scale: 4, but .* holds ×2 pairs .*set scale: 2"):
        build(shard_opt(made, scale=4))


def test_validation_names_are_unique_and_those_of_the_png_pairs(made):
    """5: BasicSR names a validation image by basename(lq_path); 24 samples must give 24 names."""
    val = build(shard_opt(made, phase="val"))
    names = [os.path.splitext(os.path.basename(val[i]["lq_path"]))[0] for i in range(len(val))]
    assert len(set(names)) == SAMPLES
    assert names == [line.split(".")[0] for line in (made["png"] / "meta_info.txt").read_text().splitlines()]


def test_home_in_dataroot_is_expanded(made, monkeypatch):
    """6"""
    monkeypatch.setenv("HOME", str(made["root"]))
    assert len(build(shard_opt(made, dataroot="~/h5"))) == SAMPLES


def test_options_that_cannot_apply_are_refused_in_one_line(made):
    for extra, key in (({"color": "rgb"}, "color"), ({"io_backend": {"type": "lmdb"}}, "io_backend"),
                       ({"meta_info_file": "x.txt"}, "meta_info_file"), ({"dataroot": None}, "dataroot")):
        with pytest.raises(AdlError, match=f"^AdlShardDataset option {key}: ") as info:
            build(shard_opt(made, **extra))
        assert "\n" not in str(info.value)


# -- LMDB, read by stock BasicSR ---------------------------------------------------------------------
def test_lmdb_read_by_stock_paired_image_dataset(made):
    stock = build(lmdb_opt(made, phase="val"))
    pairs = truth(made)
    assert len(stock) == SAMPLES
    for i in range(SAMPLES):
        item = stock[i]
        lr, hr = pairs[item["lq_path"]]  # BasicSR's LMDB paths are the keys
        assert np.array_equal((item["lq"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), lr)
        assert np.array_equal((item["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), hr)
    del stock, item  # lmdb opens an environment once per process: close it before the next dataset does
    import gc

    gc.collect()
    same_items(items(build(lmdb_opt(made, gt_size=8, use_hflip=True, use_rot=True))),
               items(build(png_opt(made, gt_size=8, use_hflip=True, use_rot=True))))


def test_jpeg_like_png_pairs_read_by_stock_paired_image_dataset(made, tmp_path):
    """--format png --jpeg-like: stock BasicSR pairs lr/ with hr/ (it needs the same name and extension) and
    feeds the JPEG-decoded LR pixels; lr_jpeg/ keeps the files that carry the LR set's tables."""
    from PIL import Image

    lr_set = tmp_path / "lr_set"
    lr_set.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(noise).save(lr_set / "a.jpg", quality=50)
    out = tmp_path / "png_jpeg"
    assert main(["-q", "generate", "--model", str(made["run"]), "--hr", str(made["hr"]), "--output", str(out), *GEN,
                 "--format", "png", "--jpeg-like", str(lr_set)]) == 0
    stock = build({**png_opt(made, phase="val"), "dataroot_gt": str(out / "hr"), "dataroot_lq": str(out / "lr"),
                   "meta_info_file": str(out / "meta_info.txt")})
    pairs = truth(made)
    assert len(stock) == SAMPLES
    changed = 0
    for i in range(SAMPLES):
        item = stock[i]
        name = Path(item["lq_path"]).stem
        lr = (item["lq"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        with Image.open(out / "lr_jpeg" / f"{name}.jpg") as jpeg:
            assert np.array_equal(lr, np.array(jpeg.convert("RGB")))
        changed += not np.array_equal(lr, pairs[name][0])
        assert np.array_equal((item["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), pairs[name][1])
    assert changed == SAMPLES  # quality 50 leaves no patch as G made it


# -- real training through BasicSR's train pipeline ---------------------------------------------------
# Records every batch the model is fed (the one instrument; the user's run is `adl basicsr-train -opt X.yml`).
RECORD = """
import sys, numpy as np
import adl.shards.basicsr  # first, as adl basicsr-train does: it lets BasicSR 1.4.2 import beside torchvision 0.29
import basicsr.models.sr_model as m
feed, batches, out = m.SRModel.feed_data, [], sys.argv[1]
def recording(self, data):
    batches.append({k: (v.numpy() if hasattr(v, "numpy") else list(v)) for k, v in data.items()})
    np.save(out, np.array(batches, dtype=object), allow_pickle=True)
    return feed(self, data)
m.SRModel.feed_data = recording
from adl.cli import main
sys.exit(main(sys.argv[2:]))
"""
ITERATIONS = 3


def options_file(made, fmt: str, folder: Path) -> Path:
    example = yaml.safe_load((REPO / "examples" / "basicsr_edsr_x2.yml").read_text())
    dataset = {"h5": shard_opt, "png": png_opt, "lmdb": lmdb_opt}[fmt](made)
    for key in ("phase", "scale"):
        del dataset[key]  # BasicSR fills them in
    train = {**example["datasets"]["train"], **dataset, "name": fmt, "batch_size_per_gpu": 4, "num_worker_per_gpu": 0}
    for key in ("dataroot_gt", "dataroot_lq", "meta_info_file", "dataroot"):
        if key not in dataset:
            train.pop(key, None)
    val = {**train, "name": f"{fmt}_val"}
    if fmt == "lmdb":  # py-lmdb opens a database once per process: validation reads its own copy
        copy = shutil.copytree(made["lmdb"], folder / "val_lmdb")
        val.update(dataroot_gt=str(copy / "hr.lmdb"), dataroot_lq=str(copy / "lr.lmdb"))
    example["datasets"] = {"train": train, "val": val}
    example.update(name=f"edsr_{fmt}", num_gpu=0)
    example["train"]["total_iter"] = ITERATIONS
    example["val"].update(val_freq=ITERATIONS, save_img=True)
    example["network_g"].update(num_feat=16, num_block=2)  # a small EDSR: the test is about the data
    example["logger"].update(print_freq=1, use_tb_logger=False)
    example["logger"]["save_checkpoint_freq"] = ITERATIONS
    path = folder / f"{fmt}.yml"
    path.write_text(yaml.safe_dump(example))
    return path


@pytest.mark.parametrize("fmt", ["png", "lmdb", "h5"])
def test_basicsr_trains_edsr_from_each_format(made, fmt, tmp_path):
    """BasicSR's train_pipeline, from `adl basicsr-train`, trains its EDSR for a few iterations and validates;
    every batch it was fed holds adl's samples exactly (augmentation off, gt_size = the patch)."""
    yml = options_file(made, fmt, tmp_path)
    record = tmp_path / "batches.npy"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", RECORD, str(record), "-q", "basicsr-train", "-opt", str(yml)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    experiment = tmp_path / "experiments" / f"edsr_{fmt}"  # in the working directory, not site-packages
    assert (experiment / "models" / f"net_g_{ITERATIONS}.pth").is_file()
    pairs, fed = truth(made), np.load(record, allow_pickle=True)
    # ITERATIONS train batches of 4, then the validation at the last iteration and BasicSR's final one, 1 by 1
    assert [len(batch["lq"]) for batch in fed] == [4] * ITERATIONS + [1] * (2 * SAMPLES)
    for batch in fed:
        assert batch["lq"].shape[1:] == (3, PATCH // 2, PATCH // 2) and batch["gt"].shape[1:] == (3, PATCH, PATCH)
        for lq, gt, path in zip(batch["lq"], batch["gt"], batch["lq_path"]):
            lr, hr = pairs[Path(path).stem if fmt != "lmdb" else path]
            assert np.array_equal((lq.transpose(1, 2, 0) * 255).round().astype(np.uint8), lr)
            assert np.array_equal((gt.transpose(1, 2, 0) * 255).round().astype(np.uint8), hr)
    # Each validation saved every image under its own name (visualization/<name>/<name>_<iter>.png): none overwritten.
    saved = list((experiment / "visualization").rglob("*.png"))
    assert len({p.parent.name for p in saved}) == SAMPLES and len(saved) == 2 * SAMPLES
