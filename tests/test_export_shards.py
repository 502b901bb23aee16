"""ONNX export and bulk (IDown, IHR) generation (issue 4): parity, backends, the shard format contract
(docs/shards.md), determinism, resume after SIGKILL, verify-shards, ShardDataset, train-sr from shards,
PNG pairs, and every bad-input case (one line naming the file or option, nothing half-written listed).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_one_error, leftovers, run_cli
from onnx import TensorProto, helper
from onnx.external_data_helper import uses_external_data
from PIL import Image
from skimage import data
from torch.utils.data import DataLoader

import adl
from adl.cli import main
from adl.downsampler.apply import apply_downsampler, downsample_image, load_downsampler
from adl.errors import AdlError
from adl.imageio import list_images, read_image, write_png
from adl.shards.dataset import ShardDataset
from adl.shards.format import write_shard
from adl.sr.pairs import ShardPatches

TINY_DOWNSAMPLER = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4",
                    "--warmup", "2", "--update-every", "3", "--kernel-size", "8", "--retrieval-images", "2",
                    "--log-every", "2", "--checkpoint-every", "4", "--device", "cpu"]
TINY_SR = ["--n-feats", "8", "--n-blocks", "1", "--hr-patch", "32", "--batch-size", "2", "--log-every", "1",
           "--device", "cpu"]
# 12 images × 2 patches of 32² in shards of 3: 8 shards, and shards that straddle two images.
GEN = ["--patch", "32", "--patches-per-image", "2", "--shard-size", "3", "--workers", "2", "--seed", "0"]
SHARDS, SAMPLES = 8, 24
GARBAGE = b"not an HDF5 file \x00\x01\x02" * 50


pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ---------------------------------------------------------------------------------------






def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shard_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).glob("shard-*.h5"))


def payload(folder: Path) -> dict[str, np.ndarray]:
    """Every dataset of every shard, read with h5py directly and concatenated in manifest order."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    parts: dict[str, list] = {"hr": [], "lr": [], "source": [], "offset": []}
    for entry in manifest["shards"]:
        with h5py.File(Path(folder) / entry["file"], "r") as f:
            for key in parts:
                parts[key].append(f[key][()])
    return {key: np.concatenate(value) for key, value in parts.items()}


def gen_args(model, hr, out, *extra) -> list[str]:
    return ["generate", "--model", str(model), "--hr", str(hr), "--output", str(out), *GEN, *map(str, extra)]


def unit_torch(model, x: torch.Tensor, scale: int) -> np.ndarray:
    with torch.no_grad():
        return ((apply_downsampler(model, x * 2 - 1, scale) + 1) / 2).numpy()


def ort_run(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


# -- shared data -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, unpaired_sets) -> dict:
    """12 HR photo crops (some of odd size), a tiny trained ×2 downsampler, its ×2 and ×4 ONNX exports
    (each alone in its folder), and a reference shard folder generated from the ×2 export."""
    root = tmp_path_factory.mktemp("export_shards")
    hr = root / "hr"
    sizes = [(72, 88), (64, 80), (71, 85)]
    for k, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        image = getattr(data, name)()[..., :3]
        for j, (h, w) in enumerate(sizes):
            y, x = 30 + 40 * j, 50 + 50 * j
            write_png(hr / f"{3 * k + j:02d}_{name}.png", image[y : y + h, x : x + w])
    run = root / "run"
    assert main(["-q", "train-downsampler", "--hr", str(unpaired_sets["hr"]), "--lr", str(unpaired_sets["lr"]),
                 "--data-loss", "lfl", "--output", str(run), "--iterations", "2", *TINY_DOWNSAMPLER]) == 0
    onnx_files = {}
    for scale in (2, 4):
        onnx_files[scale] = root / f"x{scale}" / "model.onnx"
        onnx_files[scale].parent.mkdir()
        assert main(["-q", "export", "--checkpoint", str(run), "--output", str(onnx_files[scale]),
                     "--scale", str(scale)]) == 0
    ref = root / "ref"
    assert main(["-q", *gen_args(onnx_files[2], hr, ref)]) == 0
    return {"root": root, "hr": hr, "run": run, "onnx": onnx_files, "ref": ref, "ref_done": time.monotonic()}


# -- 1. export -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_export_is_one_self_contained_file_with_provenance(world, scale):
    path = world["onnx"][scale]
    assert os.listdir(path.parent) == ["model.onnx"]  # no .onnx.data side file, no temporary
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert not any(uses_external_data(t) for t in model.graph.initializer)

    meta = {p.key: p.value for p in model.metadata_props}
    ckpt_file = world["run"] / "checkpoint.pt"
    config = torch.load(ckpt_file, map_location="cpu", weights_only=True)["config"]
    assert meta["adl_scale"] == str(scale)
    assert meta["adl_checkpoint_sha256"] == sha256(ckpt_file)
    assert meta["adl_config_fingerprint"] == hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    assert meta["adl_version"] == adl.__version__

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    assert len(inputs) == 1 and len(model.graph.output) == 1
    for value in (inputs[0], model.graph.output[0]):
        tensor = value.type.tensor_type
        assert tensor.elem_type == TensorProto.FLOAT
        dims = tensor.shape.dim
        assert len(dims) == 4 and dims[1].dim_value == 3
        for d in dims[2:]:  # dynamic height and width: named, no fixed size
            assert d.dim_param and not d.HasField("dim_value")
    # Dynamic in practice too: a size the exporter never saw.
    out = ort_run(path, torch.rand(1, 3, 40, 56))
    assert out.shape == (1, 3, 40 // scale, 56 // scale) and out.dtype == np.float32


@pytest.mark.parametrize("scale", [2, 4])
def test_export_parity_with_torch(world, scale):
    """ORT against adl.downsampler.apply.apply_downsampler within 1e-4 on the issue's two sizes. At ×4 the
    runtimes may round the intermediate image differently by a level (check_parity's docstring), so the
    ×4 graph is held to torch's second pass on ORT's own rounded first pass, and the flips are counted."""
    model, _ = load_downsampler(world["run"], torch.device("cpu"))
    generator = torch.Generator().manual_seed(7)
    for h, w in ((384, 384), (250, 170)):
        x = torch.rand(1, 3, h - h % scale, w - w % scale, generator=generator)
        got = ort_run(world["onnx"][scale], x)
        want = unit_torch(model, x, scale)
        assert got.shape == want.shape == (1, 3, x.shape[2] // scale, x.shape[3] // scale)
        if scale == 2:
            assert np.abs(got - want).max() <= 1e-4
            continue
        first = ort_run(world["onnx"][2], x)
        assert np.abs(first - unit_torch(model, x, 2)).max() <= 1e-4
        ort_levels, torch_levels = (np.clip(np.round(v * 255), 0, 255) for v in (first, unit_torch(model, x, 2)))
        flips = ort_levels != torch_levels
        assert flips.mean() <= 1e-3 and np.abs(ort_levels - torch_levels).max() <= 1
        second = unit_torch(model, torch.from_numpy(ort_levels / 255).float(), 2)
        assert np.abs(got - second).max() <= 1e-4
        # Whatever the flips did, the 8-bit results agree within one level.
        assert np.abs(np.round(got * 255) - np.round(want * 255)).max() <= 1


def test_failed_parity_writes_nothing(world, tmp_path, monkeypatch, capsys):
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.setattr("adl.downsampler.export.check_parity", lambda *args, **kwargs: 1.0)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    assert_one_error(capsys, ["export", "--checkpoint", world["run"], "--output", out], out, "not written")
    assert list(out.parent.iterdir()) == []  # neither the file nor a temporary
    assert list(work.iterdir()) == []  # the export's working folder is gone too


# -- 2. backends agree ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_onnxruntime_and_torch_backends_agree_within_one_level(world, tmp_path, scale):
    if scale == 2:
        by_ort = world["ref"]
    else:
        by_ort = tmp_path / "ort"
        assert main(["-q", *gen_args(world["onnx"][4], world["hr"], by_ort)]) == 0
    by_torch = tmp_path / "torch"
    assert main(["-q", *gen_args(world["run"], world["hr"], by_torch, "--backend", "torch", "--device", "cpu",
                                 "--scale", scale)]) == 0
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (by_ort, by_torch)]
    assert [m["provider"] for m in manifests] == ["CPUExecutionProvider", "torch:cpu"]
    a, b = payload(by_ort), payload(by_torch)
    assert np.array_equal(a["hr"], b["hr"]) and np.array_equal(a["offset"], b["offset"])
    assert list(a["source"]) == list(b["source"])
    diff = np.abs(a["lr"].astype(np.int16) - b["lr"].astype(np.int16))
    assert a["lr"].shape == (SAMPLES, 32 // scale, 32 // scale, 3)
    assert diff.max() <= 1 and diff.mean() < 0.01

    # The contract: LR is cut from G of the WHOLE image (cropped to the scale) at offset / s.
    model, _ = load_downsampler(world["run"], torch.device("cpu"))
    paths = list_images(world["hr"])
    for g in range(SAMPLES):
        path = paths[g // 2]
        assert b["source"][g].decode() == path.stem
        image = read_image(path)
        y, x = b["offset"][g]
        assert y % scale == 0 and x % scale == 0
        assert np.array_equal(b["hr"][g], image[y : y + 32, x : x + 32])
        whole = downsample_image(model, image, scale, torch.device("cpu"))
        q = 32 // scale
        assert np.array_equal(b["lr"][g], whole[y // scale : y // scale + q, x // scale : x // scale + q])


def test_full_image_pngs_match_adl_downsample(world, tmp_path):
    down = tmp_path / "down"
    assert main(["-q", "downsample", "--checkpoint", str(world["run"]), "--input", str(world["hr"]),
                 "--output", str(down), "--device", "cpu"]) == 0
    by_torch, by_ort = tmp_path / "png_torch", tmp_path / "png_ort"
    common = ["--hr", str(world["hr"]), "--format", "png", "--full-images"]
    assert main(["-q", "generate", "--model", str(world["run"]), "--output", str(by_torch), "--backend", "torch",
                 "--device", "cpu", *common]) == 0
    assert main(["-q", "generate", "--model", str(world["onnx"][2]), "--output", str(by_ort), *common]) == 0
    for path in list_images(world["hr"]):
        name = f"{path.stem}.png"
        reference = read_image(down / path.name)
        assert np.array_equal(read_image(by_torch / "lr" / name), reference)
        assert np.abs(read_image(by_ort / "lr" / name).astype(int) - reference).max() <= 1
        image = read_image(path)
        h, w = reference.shape[0] * 2, reference.shape[1] * 2
        assert np.array_equal(read_image(by_torch / "hr" / name), image[:h, :w])
    lines = (by_torch / "meta_info.txt").read_text().splitlines()
    assert lines == [f"{p.stem}.png ({(read_image(p).shape[0] // 2) * 2},{(read_image(p).shape[1] // 2) * 2},3)"
                     for p in list_images(world["hr"])]


def test_the_onnxruntime_path_never_imports_torch(world, tmp_path):
    """Importing torch costs seconds and hundreds of MiB per run and per writer process: the ONNX
    Runtime path of generate does without it (its ratio to the torch backend is a goal, docs/performance.md)."""
    out = tmp_path / "out"
    code = ("import sys; from adl.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(rc or (3 if 'torch' in sys.modules else 0))")
    result = subprocess.run([sys.executable, "-c", code, "-q", *gen_args(world["onnx"][2], world["hr"], out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert (out / "manifest.json").exists()


# -- 3. determinism and the format -----------------------------------------------------------------
def test_same_inputs_give_byte_identical_shards(world, tmp_path):
    time.sleep(max(0.0, world["ref_done"] + 1.1 - time.monotonic()))  # so that a stored time would differ
    again = tmp_path / "again"
    assert main(["-q", *gen_args(world["onnx"][2], world["hr"], again)]) == 0
    ref = world["ref"]
    assert shard_files(again) == shard_files(ref) == [f"shard-{k:05d}.h5" for k in range(SHARDS)]
    for name in shard_files(ref):
        assert (again / name).read_bytes() == (ref / name).read_bytes(), name
    assert (again / "manifest.json").read_bytes() == (ref / "manifest.json").read_bytes()
    assert (again / "generate.json").read_bytes() == (ref / "generate.json").read_bytes()
    a, b = payload(again), payload(ref)
    for key in a:
        assert np.array_equal(a[key], b[key]), key

    manifest = json.loads((ref / "manifest.json").read_text())
    model_sha = sha256(world["onnx"][2])
    assert manifest["format_version"] == 2 and manifest["scale"] == 2 and manifest["seed"] == 0
    assert manifest["model"] == {"path": str(world["onnx"][2]), "sha256": model_sha}
    assert manifest["options"]["patch"] == 32 and manifest["options"]["shard_size"] == 3
    assert manifest["total_samples"] == SAMPLES
    for k, entry in enumerate(manifest["shards"]):
        path = ref / entry["file"]
        assert entry == {"file": f"shard-{k:05d}.h5", "samples": 3, "bytes": path.stat().st_size,
                         "sha256": sha256(path)}
        record = json.loads((ref / f"shard-{k:05d}.record.json").read_text())  # format 2: written after the shard
        assert {key: record[key] for key in entry} == entry and len(record["options_key"]) == 64
        with h5py.File(path, "r") as f:
            assert dict(f.attrs) == {"scale": 2, "format_version": 2, "model_sha256": model_sha}
            assert f["hr"].shape == (3, 32, 32, 3) and f["hr"].dtype == np.uint8
            assert f["lr"].shape == (3, 16, 16, 3) and f["lr"].dtype == np.uint8
            assert f["offset"].shape == (3, 2) and f["offset"].dtype == np.int32
            for key in ("hr", "lr"):  # docs/shards.md: one sample per chunk, gzip level 1
                assert f[key].chunks == (1, *f[key].shape[1:]) and f[key].compression == "gzip"
                assert f[key].compression_opts == 1
            assert all(f[key].fletcher32 for key in ("hr", "lr", "offset"))  # damaged chunks fail at read time

    # The seed matters: another seed draws other patches.
    other = tmp_path / "seed1"
    assert main(["-q", *gen_args(world["onnx"][2], world["hr"], other)[:-1], "1"]) == 0
    assert not np.array_equal(payload(other)["offset"], b["offset"])


# -- 4. SIGKILL and resume ---------------------------------------------------------------------------
SLOW_GENERATE = """
import sys, time
import adl.shards.backends as g
call = g.OnnxBackend.downsample
def slow(self, image):
    time.sleep(0.25)  # a big model on a big image: long enough to be killed mid-run
    return call(self, image)
g.OnnxBackend.downsample = slow
from adl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_rerun_completes_and_equals_an_uninterrupted_run(world, tmp_path, capsys):
    out = tmp_path / "killed"
    args = ["-q", *gen_args(world["onnx"][2], world["hr"], out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_GENERATE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out.exists() and shard_files(out)):
        assert proc.poll() is None, f"generation ended before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    # A kill between a shard's rename and its record leaves a shard that the rerun must not adopt.
    finished = [name for name in shard_files(out) if (out / name.replace(".h5", ".record.json")).exists()]
    assert 1 <= len(finished) < SHARDS
    stamps = {name: ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) for name in finished}
    # A stale temporary of adl's (as a kill during a write leaves) and someone else's hidden file.
    stale = out / ".shard-00007.h5.k1ll3d.part.h5"
    stale.write_bytes(GARBAGE)
    (out / ".notes").write_text("mine")

    code, _, err = run_cli(capsys, args)
    assert code == 0, err
    assert not stale.exists() and leftovers(out) == []
    assert (out / ".notes").read_text() == "mine"
    for name, stamp in stamps.items():  # finished shards were skipped, not rewritten
        assert ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) == stamp
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    assert shard_files(out) == shard_files(world["ref"])
    for name in shard_files(out):
        assert (out / name).read_bytes() == (world["ref"] / name).read_bytes(), name
    assert (json.loads((out / "manifest.json").read_text())
            == json.loads((world["ref"] / "manifest.json").read_text()))


# -- 5. refusing another generation ------------------------------------------------------------------
def test_rerun_with_other_options_or_into_a_foreign_folder_is_refused(world, tmp_path, capsys):
    done = shutil.copytree(world["ref"], tmp_path / "done")
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    assert_one_error(capsys, [*gen_args(world["onnx"][2], world["hr"], done)[:-1], "1"], done, "--seed")
    assert_one_error(capsys, [*gen_args(world["onnx"][2], world["hr"], done), "--patch", "16"], done, "--patch")
    fewer = shutil.copytree(world["hr"], tmp_path / "fewer")
    next(fewer.iterdir()).unlink()
    assert_one_error(capsys, gen_args(world["onnx"][2], fewer, done), done, "--hr")
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before
    # The same command into a finished folder does nothing.
    assert run_cli(capsys, gen_args(world["onnx"][2], world["hr"], done))[0] == 0
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not adl's")
    assert_one_error(capsys, gen_args(world["onnx"][2], world["hr"], foreign), "--output", foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


# -- 6. verify-shards --------------------------------------------------------------------------------
def test_verify_shards_clean_and_each_kind_of_damage(world, tmp_path, capsys):
    code, out, _ = run_cli(capsys, ["verify-shards", world["ref"]])
    assert code == 0 and f"{SHARDS} shard(s), {SAMPLES} samples" in out

    def damaged(name: str) -> Path:
        return shutil.copytree(world["ref"], tmp_path / name)

    flipped = damaged("flipped")
    for name in ("shard-00005.h5", "shard-00002.h5"):  # two bad files: the first is named
        raw = bytearray((flipped / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (flipped / name).write_bytes(bytes(raw))
    line = assert_one_error(capsys, ["verify-shards", flipped], flipped / "shard-00002.h5", "sha256")
    assert "shard-00005" not in line

    missing = damaged("missing")
    (missing / "shard-00004.h5").unlink()
    assert_one_error(capsys, ["verify-shards", missing], missing / "shard-00004.h5", "missing")

    # Right bytes and sha256 in the manifest, but the wrong shape inside: still refused.
    reshaped = damaged("reshaped")
    rng = np.random.default_rng(0)
    entry = write_shard(reshaped / "shard-00001.h5", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
                        rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), ["a", "b", "c"],
                        np.zeros((3, 2), np.int32), 2, "x")
    manifest = json.loads((reshaped / "manifest.json").read_text())
    manifest["shards"][1] = entry
    (reshaped / "manifest.json").write_text(json.dumps(manifest))
    assert_one_error(capsys, ["verify-shards", reshaped], reshaped / "shard-00001.h5", "lr")

    unfinished = damaged("unfinished")
    (unfinished / "manifest.json").unlink()
    assert_one_error(capsys, ["verify-shards", unfinished], unfinished, "did not finish")

    broken = damaged("broken")
    (broken / "manifest.json").write_text('{"format_version": 1, "shards": [')
    assert_one_error(capsys, ["verify-shards", broken], broken / "manifest.json")


# -- 7. ShardDataset ---------------------------------------------------------------------------------
def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)).astype(np.float32) / 255)


def test_shard_dataset_items_and_two_workers(world):
    truth = payload(world["ref"])
    want_lr, want_hr = chw(truth["lr"]), chw(truth["hr"])
    ds = ShardDataset(world["ref"])
    assert len(ds) == SAMPLES == len(want_lr)
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.dtype == hr.dtype == torch.float32
        assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
        assert torch.equal(lr, want_lr[i]) and torch.equal(hr, want_hr[i])
        assert 0 <= float(hr.min()) and float(hr.max()) <= 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    # Handles are now open in this process; the dataset still pickles and forks into workers.
    assert torch.equal(pickle.loads(pickle.dumps(ds))[5][1], want_hr[5])
    for workers in (0, 2):
        batches = list(DataLoader(ds, batch_size=5, shuffle=False, num_workers=workers))
        assert torch.equal(torch.cat([b[0] for b in batches]), want_lr)
        assert torch.equal(torch.cat([b[1] for b in batches]), want_hr)


def dihedral(t: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of a CHW tensor (bits: mirror, flip, transpose)."""
    if k & 1:
        t = t.flip(-1)
    if k & 2:
        t = t.flip(-2)
    return t.transpose(-1, -2) if k & 4 else t


def test_shard_dataset_flips_lr_and_hr_alike(world):
    truth = payload(world["ref"])
    want_lr, want_hr = chw(truth["lr"]), chw(truth["hr"])
    ds = ShardDataset(world["ref"], flips=True)
    torch.manual_seed(0)
    items = [ds[i] for i in range(len(ds))]
    used = set()
    for i, (lr, hr) in enumerate(items):
        both = [k for k in range(8)
                if torch.equal(dihedral(want_lr[i], k), lr) and torch.equal(dihedral(want_hr[i], k), hr)]
        assert both, f"item {i}: LR and HR were not transformed alike"
        used.add(both[0])
    assert len(used) >= 3  # flips do happen
    torch.manual_seed(0)
    assert all(torch.equal(a[1], ds[i][1]) for i, a in enumerate(items))  # and repeat under manual_seed


def test_corrupt_shard_is_named_by_the_dataset_and_train_sr(world, tmp_path, capsys):
    bad = shutil.copytree(world["ref"], tmp_path / "bad")
    for name in shard_files(bad):
        (bad / name).write_bytes(GARBAGE)
    ds = ShardDataset(bad)
    with pytest.raises(AdlError, match="shard-00001.h5"):
        ds[3]
    assert_one_error(capsys, ["verify-shards", bad], bad / "shard-00000.h5")
    assert_one_error(capsys, ["train-sr", "--lr-source", f"shards:{bad}", "--output", tmp_path / "sr",
                              "--iterations", "2", *TINY_SR], bad / "shard-")


# -- 8. train-sr from shards -----------------------------------------------------------------------
def test_train_sr_from_shards(world, tmp_path, capsys):
    out = tmp_path / "sr"
    code, _, err = run_cli(capsys, ["train-sr", "--lr-source", f"shards:{world['ref']}", "--output", out,
                                    "--iterations", "3", *TINY_SR])
    assert code == 0, err
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 3
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]

    src = f"shards:{world['ref']}"
    assert_one_error(capsys, ["train-sr", "--lr-source", src, "--output", tmp_path / "x4", "--iterations", "3",
                              *TINY_SR, "--scale", "4"], "--lr-source", "×2")
    assert_one_error(capsys, ["train-sr", "--lr-source", src, "--output", tmp_path / "big", "--iterations", "3",
                              *TINY_SR, "--hr-patch", "48"], "--hr-patch 48")
    unfinished = shutil.copytree(world["ref"], tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()
    assert_one_error(capsys, ["train-sr", "--lr-source", f"shards:{unfinished}", "--output", tmp_path / "u",
                              "--iterations", "3", *TINY_SR], unfinished, "did not finish")


def test_shard_patches_are_aligned_crops_of_stored_pairs(world):
    truth = payload(world["ref"])
    patches = ShardPatches(str(world["ref"]), 8, 2, seed=3, flips=False)
    for i in range(6):
        lr, hr = (t.numpy().transpose(1, 2, 0) for t in patches[i])
        assert lr.shape == (8, 8, 3) and hr.shape == (16, 16, 3)
        found = [(j, y, x) for j in range(SAMPLES) for y in range(9) for x in range(9)
                 if np.array_equal(truth["lr"][j, y : y + 8, x : x + 8], lr)
                 and np.array_equal(truth["hr"][j, 2 * y : 2 * y + 16, 2 * x : 2 * x + 16], hr)]
        assert found, f"item {i} is not an aligned crop of a stored pair"


# -- 9. PNG pairs ------------------------------------------------------------------------------------
def test_png_pairs_layout_and_contents(world, tmp_path, capsys):
    out = tmp_path / "png"
    assert main(["-q", *gen_args(world["onnx"][2], world["hr"], out), "--format", "png"]) == 0
    names = sorted(p.name for p in (out / "hr").iterdir())
    assert names == sorted(p.name for p in (out / "lr").iterdir())
    stems = [p.stem for p in list_images(world["hr"])]
    assert names == [f"{stem}_{k:03d}.png" for stem in stems for k in range(2)]
    lines = (out / "meta_info.txt").read_text().splitlines()
    assert lines == [f"{name} (32,32,3)" for name in names]
    truth = payload(world["ref"])
    for g, name in enumerate(names):  # the same samples as the shards, in the same order
        assert np.array_equal(read_image(out / "hr" / name), truth["hr"][g])
        assert np.array_equal(read_image(out / "lr" / name), truth["lr"][g])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == manifest["total_samples"] == SAMPLES and manifest["options"]["format"] == "png"
    assert leftovers(out) == []

    assert_one_error(capsys, [*gen_args(world["onnx"][2], world["hr"], tmp_path / "full"), "--full-images"],
                     "--full-images", "--format png", code=2)
    assert not (tmp_path / "full").exists()


# -- 10. bad input -----------------------------------------------------------------------------------
def tiny_onnx(path: Path, inputs: list[list], metadata: bool = True) -> Path:
    """A small graph with adl's metadata (unless told otherwise); one Identity/Add node."""
    values = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape) for i, shape in enumerate(inputs)]
    node = (helper.make_node("Add", ["x0", "x1"], ["y"]) if len(inputs) == 2
            else helper.make_node("Identity", ["x0"], ["y"]))
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, inputs[0])
    model = helper.make_model(helper.make_graph([node], "g", values, [output]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        for key, value in (("adl_kind", "downsampler"), ("adl_scale", "2")):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


NCHW = ["N", 3, "H", "W"]
BAD_MODELS = {
    "two_inputs": lambda p: tiny_onnx(p, [NCHW, NCHW]),
    "one_channel": lambda p: tiny_onnx(p, [["N", 1, "H", "W"]]),
    "no_metadata": lambda p: tiny_onnx(p, [NCHW], metadata=False),
    "garbage": lambda p: (p.write_bytes(GARBAGE), p)[1],
}


@pytest.mark.parametrize("kind", sorted(BAD_MODELS))
def test_model_that_is_not_a_downsampler_onnx(world, tmp_path, capsys, kind):
    model = BAD_MODELS[kind](tmp_path / f"{kind}.onnx")
    out = tmp_path / "out"
    assert_one_error(capsys, gen_args(model, world["hr"], out), "--model", model)
    assert not out.exists()


def test_onnx_with_metadata_but_the_wrong_output_is_refused(world, tmp_path, capsys):
    """An identity graph labelled as a ×2 downsampler: its 'LR' has the HR's size, so cutting it at
    offset/2 would silently store wrong pairs."""
    model = tiny_onnx(tmp_path / "identity.onnx", [NCHW])
    out = tmp_path / "out"
    assert_one_error(capsys, gen_args(model, world["hr"], out), "--model", model, "output")
    assert not (out / "manifest.json").exists() and shard_files(out) == [] and leftovers(out) == []


def small_image_folder(world, tmp_path, size: int) -> Path:
    """The 12 HR images plus one too small, sorted last so that some shards are written first."""
    folder = shutil.copytree(world["hr"], tmp_path / f"hr_{size}")
    write_png(folder / "zz_small.png", np.full((size, size + 1, 3), 128, np.uint8))
    return folder


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("size", [3, 20])
def test_image_smaller_than_the_patch_or_than_g_takes(world, tmp_path, capsys, backend, size):
    folder = small_image_folder(world, tmp_path, size)
    model = world["onnx"][2] if backend == "onnxruntime" else world["run"]
    out = tmp_path / "out"
    args = gen_args(model, folder, out, "--backend", backend, "--device", "cpu")
    if size == 3:
        args[args.index("--patch") + 1] = "2"
    assert_one_error(capsys, args, folder / "zz_small.png", "smaller than")
    assert not (out / "manifest.json").exists() and leftovers(out) == []
    assert 1 <= len(shard_files(out)) < SHARDS + 1  # finished shards stay for a rerun; nothing is listed
    # Full images have no patch, yet an image G cannot take is still named.
    if size == 3:
        png = tmp_path / "png"
        assert_one_error(capsys, ["generate", "--model", model, "--hr", folder, "--output", png, "--backend", backend,
                                  "--device", "cpu", "--format", "png", "--full-images"], folder / "zz_small.png")
        assert not (png / "manifest.json").exists() and not (png / "meta_info.txt").exists()


@pytest.mark.parametrize("case", ["patch_33", "torch_given_onnx", "ort_given_checkpoint", "scale_mismatch",
                                  "png_same_stem"])
def test_bad_generate_options(world, tmp_path, capsys, case):
    out = tmp_path / "out"
    onnx2, run, hr = world["onnx"][2], world["run"], world["hr"]
    if case == "patch_33":
        args, names = [*gen_args(onnx2, hr, out), "--patch", "33"], ["--patch 33"]
    elif case == "torch_given_onnx":
        args, names = gen_args(onnx2, hr, out, "--backend", "torch"), ["--model", onnx2]
    elif case == "ort_given_checkpoint":
        args, names = gen_args(run, hr, out, "--backend", "onnxruntime"), ["--model", run]
    elif case == "scale_mismatch":
        args, names = gen_args(onnx2, hr, out, "--scale", "4"), ["--scale 4", onnx2]
    else:
        hr = shutil.copytree(world["hr"], tmp_path / "hr")
        Image.fromarray(read_image(hr / "00_astronaut.png")).save(hr / "00_astronaut.jpg")
        args, names = [*gen_args(onnx2, hr, out), "--format", "png"], ["00_astronaut"]
    assert_one_error(capsys, args, *names, code=2 if case == "patch_33" else 1)  # --patch 33 is a usage error
    assert not out.exists()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="ORT has CUDA here")
def test_cuda_without_a_cuda_provider_is_an_error_not_a_fallback(world, tmp_path, capsys):
    out = tmp_path / "out"
    assert_one_error(capsys, gen_args(world["onnx"][2], world["hr"], out, "--device", "cuda"), "--device cuda")
    assert not out.exists()


def test_full_disk_while_writing_shards(world, tmp_path, monkeypatch, capsys):
    """The disk fills at shard 2 and stays full: one line naming that shard, no manifest, no temporary;
    once space is back the same command completes the run exactly."""
    create = h5py.Group.create_dataset
    calls = []

    def filling(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 8:  # four datasets per shard: shards 0 and 1 fit
            raise OSError(28, "No space left on device")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", filling)
    out = tmp_path / "out"
    args = gen_args(world["onnx"][2], world["hr"], out, "--writers", "0")  # the patch reaches this process only
    assert_one_error(capsys, args, out / "shard-00002.h5", "No space left on device")
    assert not (out / "manifest.json").exists() and leftovers(out) == []
    assert shard_files(out) == ["shard-00000.h5", "shard-00001.h5"]
    monkeypatch.undo()
    assert run_cli(capsys, args)[0] == 0
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    assert (out / "manifest.json").read_bytes() == (world["ref"] / "manifest.json").read_bytes()


def test_full_disk_while_writing_pngs(world, tmp_path, monkeypatch, capsys):
    save = Image.Image.save
    calls = []

    def filling(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise OSError(28, "No space left on device")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", filling)
    out = tmp_path / "out"
    line = assert_one_error(capsys, [*gen_args(world["onnx"][2], world["hr"], out), "--format", "png"],
                            "No space left on device")
    assert str(out / "hr") in line or str(out / "lr") in line
    assert not (out / "manifest.json").exists() and not (out / "meta_info.txt").exists() and leftovers(out) == []


def test_settings_may_change_after_a_run_that_generated_nothing(tmp_path, capsys):
    """The error for a too-large patch says to lower --patch; doing so in the same folder must work."""
    from skimage import data

    from adl.downsampler.apply import CHECKPOINT_KIND
    from adl.nets import Downsampler

    hr = tmp_path / "hr"
    write_png(hr / "a.png", data.astronaut()[:64, :64])
    model = tmp_path / "run"
    model.mkdir()
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 4, "scale": 2}, "G": Downsampler(4).state_dict()},
               model / "checkpoint.pt")
    out = tmp_path / "out"
    base = ["-q", "generate", "--model", str(model), "--hr", str(hr), "--output", str(out), "--device", "cpu",
            "--patches-per-image", "2"]
    assert main([*base, "--patch", "96"]) == 1
    assert "--patch" in capsys.readouterr().err
    assert main([*base, "--patch", "32"]) == 0
    assert json.loads((out / "generate.json").read_text())["options"]["patch"] == 32
    assert main([*base, "--patch", "16"]) == 1  # now shards exist: a change is refused


# -- issue 20: memory --------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_lean_onnx_memory_settings_change_no_pixel(world, scale):
    """The backend's session (no memory pattern, an arena that grows by what is asked) allocates
    differently from ONNX Runtime's defaults and must compute the very same bits, across sizes."""
    from adl.shards.backends import OnnxBackend

    backend = OnnxBackend(str(world["onnx"][scale]), None, "cpu", streams=1)
    plain = ort.InferenceSession(str(world["onnx"][scale]), providers=["CPUExecutionProvider"])
    try:
        for path in sorted(world["hr"].iterdir())[:3]:  # three sizes, each cropped to a multiple of ×4
            hr = read_image(path)
            hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
            x = np.ascontiguousarray(hr.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
            y = plain.run(None, {plain.get_inputs()[0].name: x})[0][0] * np.float32(255.0)
            want = np.clip(np.round(y), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            assert np.array_equal(backend.downsample(hr), want), path.name
    finally:
        backend.close()


def test_max_memory_changes_no_sample_and_a_rerun_under_another_resumes(world, tmp_path, capsys):
    """A budget that allows one image at a time (not two) writes the reference's very bytes, records
    nothing of itself, and a folder written under one budget is complete under another."""
    from adl.downsampler.memory import estimate, images_in_flight
    from adl.imageio import image_pixels

    largest = max(image_pixels(p) for p in world["hr"].iterdir())
    budget = estimate("onnxruntime", largest, 1, read_ahead=4)  # --workers 2 reads 4 ahead
    assert images_in_flight("onnxruntime", budget, largest, 4, wanted=2) == 1
    out = tmp_path / "one"
    assert main(["-q", *gen_args(world["onnx"][2], world["hr"], out, "--max-memory", budget)]) == 0
    ref = world["ref"]
    assert shard_files(out) == shard_files(ref)
    for name in [*shard_files(ref), "manifest.json", "generate.json"]:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    code, _, err = run_cli(capsys, gen_args(world["onnx"][2], world["hr"], out, "--max-memory", "8G"))
    assert code == 0 and "already complete" in err, err


@pytest.mark.parametrize("on_error", ["stop", "skip"])
def test_max_memory_too_small_for_an_image(world, tmp_path, capsys, on_error):
    from adl.downsampler.memory import estimate

    budget = estimate("onnxruntime", 64 * 80, 1, read_ahead=4)  # the 64x80 crops fit, 72x88 and 70x84 do not
    out = tmp_path / "out"
    args = gen_args(world["onnx"][2], world["hr"], out, "--max-memory", budget, "--on-error", on_error)
    if on_error == "stop":
        line = assert_one_error(capsys, args, world["hr"] / "00_astronaut.png", "--max-memory")
        assert "88x72" in line and "InstanceNorm" in line
        assert not (out / "manifest.json").exists()
        return
    assert main(["-q", *args]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(s["file"] for s in manifest["skipped"]) == sorted(
        p.name for p in world["hr"].iterdir() if not p.name.startswith(("01_", "04_", "07_", "10_")))
    assert all("--max-memory" in s["reason"] for s in manifest["skipped"])


def test_generate_max_memory_below_the_fixed_cost_is_a_usage_error(world, tmp_path, capsys):
    out = tmp_path / "out"
    assert_one_error(capsys, gen_args(world["onnx"][2], world["hr"], out, "--max-memory", "100M"),
                     "--max-memory 100 MiB", code=2)
    assert not out.exists()
