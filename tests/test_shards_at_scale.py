"""Generation at scale (issue 13): parts whose union is an unsplit run, merge-shards (refusals, SIGKILL and
rerun, --move), HR list files / globs / several folders, --shard-bytes, --compression, and the dict-mode
ShardDataset that BasicSR-style training code reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import assert_one_error, leftovers, run_cli
from skimage import data
from torch.utils.data import DataLoader

from adl.cli import main
from adl.errors import AdlError
from adl.image_lists import resolve_images
from adl.imageio import write_png
from adl.shards.dataset import ShardDataset
from adl.shards.parts import part_shards

REPO = Path(__file__).resolve().parent.parent
TINY_DOWNSAMPLER = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4", "--warmup", "2",
                    "--update-every", "3", "--kernel-size", "8", "--retrieval-images", "2", "--log-every", "2",
                    "--checkpoint-every", "4", "--device", "cpu"]
# 7 images × 3 patches in shards of 4: 6 shards, the last one short, most of them straddling two images.
BASE = ["--patch", "32", "--patches-per-image", "3", "--workers", "1", "--writers", "0", "--device", "cpu"]
GEN = [*BASE, "--shard-size", "4", "--seed", "0"]
SHARDS, SAMPLES = 6, 21

pytestmark = pytest.mark.usefixtures("one_thread")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shard_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).glob("shard-*.h5"))


def samples(folders: list[Path]) -> dict[str, np.ndarray]:
    """Every dataset of every shard of ``folders``, read with h5py alone, in manifest order."""
    columns: dict[str, list] = {"hr": [], "lr": [], "source": [], "offset": []}
    for folder in folders:
        for entry in json.loads((folder / "manifest.json").read_text())["shards"]:
            with h5py.File(folder / entry["file"], "r") as f:
                for key in columns:
                    columns[key].append(f[key][()])
    return {key: np.concatenate(value) for key, value in columns.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory, unpaired_sets) -> dict:
    """7 HR crops of varied size, a tiny ×2 downsampler (torch backend, no export needed) and the unsplit run."""
    root = tmp_path_factory.mktemp("at_scale")
    hr = root / "hr"
    for k, (name, (h, w)) in enumerate(zip(("astronaut", "coffee", "chelsea", "rocket", "astronaut", "coffee",
                                            "chelsea"),
                                           [(64, 72), (72, 64), (66, 70), (64, 64), (70, 80), (64, 68), (80, 64)])):
        image = getattr(data, name)()[..., :3]
        write_png(hr / f"{k:02d}_{name}.png", image[20 + 10 * k : 20 + 10 * k + h, 30 + 9 * k : 30 + 9 * k + w])
    run = root / "run"
    assert main(["-q", "train-downsampler", "--hr", str(unpaired_sets["hr"]), "--lr", str(unpaired_sets["lr"]),
                 "--data-loss", "lfl", "--output", str(run), "--iterations", "2", *TINY_DOWNSAMPLER]) == 0
    ref = root / "ref"
    assert main(["-q", "generate", "--model", str(run), "--hr", str(hr), "--output", str(ref), *GEN]) == 0
    return {"root": root, "hr": hr, "run": run, "ref": ref}


def generate(world, out: Path, *extra, hr=None, options=GEN) -> list[str]:
    """`adl generate` argv; options given later in ``extra`` override ``options``."""
    hr = [str(world["hr"])] if hr is None else list(map(str, hr))
    return ["generate", "--model", str(world["run"]), "--hr", *hr, "--output", str(out), *options, *map(str, extra)]


def make_parts(world, capsys, folder: Path, count: int, *extra) -> list[Path]:
    parts = [folder / f"part-{i}" for i in range(1, count + 1)]
    for i, part in enumerate(parts, 1):
        code, _, err = run_cli(capsys, generate(world, part, "--part", f"{i}/{count}", *extra))
        assert code == 0, err
    return parts


@pytest.fixture(scope="module")
def three_parts(world, tmp_path_factory) -> list[Path]:
    """The unsplit run in 3 parts, made once; merges copy them first when they may change them."""
    folder = tmp_path_factory.mktemp("three_parts")
    parts = [folder / f"part-{i}" for i in (1, 2, 3)]
    for i, part in enumerate(parts, 1):
        assert main(["-q", *generate(world, part, "--part", f"{i}/3")]) == 0
    return parts


def copies(parts: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copytree(p, folder / p.name)) for p in parts]


# -- 1. parts --------------------------------------------------------------------------------------
def test_part_ranges_cover_every_shard_once_and_stay_put_when_n_changes():
    for shards in (0, 1, 5, 6, 31):
        for count in range(1, 9):
            covered = [k for i in range(1, count + 1) for k in part_shards(shards, i, count)]
            assert covered == list(range(shards))
            sizes = [len(part_shards(shards, i, count)) for i in range(1, count + 1)]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_union_of_parts_is_the_unsplit_run_sample_by_sample(world, tmp_path, capsys, count):
    parts = make_parts(world, capsys, tmp_path, count)
    ref = world["ref"]
    names = [name for part in parts for name in shard_files(part)]
    assert names == shard_files(ref) and len(names) == SHARDS  # each shard in exactly one part, in order
    for part in parts:
        assert run_cli(capsys, ["verify-shards", part])[0] == 0
        for name in shard_files(part):  # the same bytes: HDF5 files written with track_times=False
            assert sha256(part / name) == sha256(ref / name), name
    union, whole = samples(parts), samples([ref])
    assert len(union["hr"]) == SAMPLES
    for key in whole:
        assert np.array_equal(union[key], whole[key]), key
    if count == 8:  # more parts than shards: the extra parts are empty, and still valid
        manifests = [json.loads((part / "manifest.json").read_text()) for part in parts]
        empty = [m for m in manifests if m["shards"] == []]
        assert len(empty) == 8 - SHARDS and all(m["total_samples"] == 0 for m in empty)


def test_a_part_folder_refuses_another_part(world, tmp_path, capsys):
    part = tmp_path / "p"
    assert run_cli(capsys, generate(world, part, "--part", "1/2"))[0] == 0
    assert_one_error(capsys, generate(world, part, "--part", "2/2"), "--part", part)
    assert_one_error(capsys, generate(world, part), "--part", part)


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_bad_part_is_named(world, tmp_path, capsys, text):
    assert_one_error(capsys, generate(world, tmp_path / "x", "--part", text), "--part", text, code=2)
    assert not (tmp_path / "x").exists()


def test_part_with_png_folders_is_refused(world, tmp_path, capsys):
    assert_one_error(capsys, generate(world, tmp_path / "x", "--part", "1/2", "--format", "png"), "--part",
                     "--format png", code=2)


# -- 2. merge --------------------------------------------------------------------------------------
def test_merge_equals_the_unsplit_run_and_adopts_by_hard_link(world, three_parts, tmp_path, capsys):
    out = tmp_path / "merged"
    code, stdout, err = run_cli(capsys, ["merge-shards", *three_parts, "--output", out])
    assert code == 0, err
    assert f"{SHARDS} shard(s), {SAMPLES} samples from 3 part(s)" in stdout
    ref = world["ref"]
    assert shard_files(out) == shard_files(ref)
    for name in shard_files(out):
        assert sha256(out / name) == sha256(ref / name)
    inodes = {(p / n).stat().st_ino for p in three_parts for n in shard_files(p)}
    assert {(out / n).stat().st_ino for n in shard_files(out)} == inodes  # linked, not copied
    merged, whole = (json.loads((f / "manifest.json").read_text()) for f in (out, ref))
    assert merged["shards"] == whole["shards"] and merged["total_samples"] == SAMPLES
    assert merged["options"] == whole["options"] and merged["compression"] == whole["compression"]
    assert [m["part"] for m in merged["merged_from"]] == ["1/3", "2/3", "3/3"]
    assert (out / "generate.json").read_bytes() == (ref / "generate.json").read_bytes()
    records = sorted(p.name for p in out.glob("shard-*.record.json"))
    assert records == sorted(p.name for p in ref.glob("shard-*.record.json")) and len(records) == SHARDS
    for name in records:  # the records an unsplit run writes: the options key leaves the part out
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    # The merged folder is the unsplit run's folder: adl generate finds it complete, and a rerun of
    # the merge has nothing to do.
    before = {n: (out / n).stat().st_mtime_ns for n in shard_files(out)}
    assert run_cli(capsys, generate(world, out))[0] == 0
    assert run_cli(capsys, ["merge-shards", *three_parts, "--output", out])[0] == 0
    assert {n: (out / n).stat().st_mtime_ns for n in shard_files(out)} == before


def test_merge_with_move_empties_the_parts(world, three_parts, tmp_path, capsys):
    parts = copies(three_parts, tmp_path / "parts")
    out = tmp_path / "merged"
    code, _, err = run_cli(capsys, ["merge-shards", *reversed(parts), "--output", out, "--move"])  # any order
    assert code == 0, err
    assert not any(p.exists() for p in parts)
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    # Rerun after it finished: the parts are gone, and there is nothing to do.
    assert run_cli(capsys, ["merge-shards", *reversed(parts), "--output", out, "--move"])[0] == 0
    for name in shard_files(world["ref"]):
        assert sha256(out / name) == sha256(world["ref"] / name)


MERGE_KILLED_AT = """
import os, signal, sys
from pathlib import Path
calls = []
def dying(real):
    def call(src, dst, *a, **k):
        if Path(dst).name.startswith("shard-"):
            calls.append(dst)
            if len(calls) == 3:  # mid-merge: two shards adopted, the third not yet
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    return call
os.link, os.rename = dying(os.link), dying(os.rename)
from adl.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("move", [False, True])
def test_merge_killed_then_rerun_completes_and_verifies(world, three_parts, tmp_path, capsys, move):
    parts = copies(three_parts, tmp_path / "parts")
    out = tmp_path / "merged"
    args = ["-q", "merge-shards", *map(str, parts), "--output", str(out), *(["--move"] if move else [])]
    killed = subprocess.run([sys.executable, "-c", MERGE_KILLED_AT, *args], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(shard_files(out)) == 2 and not (out / "manifest.json").exists()
    assert run_cli(capsys, ["verify-shards", out])[0] == 1  # incomplete, and says so
    code, _, err = run_cli(capsys, args[1:])
    assert code == 0, err
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    assert leftovers(out) == []
    for name in shard_files(world["ref"]):
        assert sha256(out / name) == sha256(world["ref"] / name)
    assert (json.loads((out / "manifest.json").read_text())["shards"]
            == json.loads((world["ref"] / "manifest.json").read_text())["shards"])


@pytest.mark.parametrize("case", ["seed", "model", "count", "twice", "missing", "unfinished", "corrupt", "whole",
                                  "foreign_output"])
def test_merge_refuses_mismatched_or_broken_parts(world, three_parts, tmp_path, capsys, case):
    parts = copies(three_parts, tmp_path / "parts")
    out = tmp_path / "merged"
    if case == "seed":  # part 2 regenerated with another seed
        shutil.rmtree(parts[1])
        assert run_cli(capsys, generate(world, parts[1], "--part", "2/3", "--seed", "7"))[0] == 0
        names = [parts[1], "--seed"]
    elif case == "model":
        other = tmp_path / "other-run"
        assert main(["-q", "train-downsampler", "--hr", str(world["hr"]), "--lr", str(world["hr"]), "--data-loss",
                     "lfl", "--output", str(other), "--iterations", "2", "--seed", "1", *TINY_DOWNSAMPLER]) == 0
        shutil.rmtree(parts[2])
        generate_args = generate(world, parts[2], "--part", "3/3")
        generate_args[generate_args.index("--model") + 1] = str(other)
        assert run_cli(capsys, generate_args)[0] == 0
        names = [parts[2], "--model"]
    elif case == "count":
        shutil.rmtree(parts[2])
        assert run_cli(capsys, generate(world, parts[2], "--part", "2/2"))[0] == 0
        names = [parts[2], "--part"]
    elif case == "twice":
        parts[2] = parts[1]
        names = [parts[1], "given twice"]
    elif case == "missing":
        parts = parts[:2]
        names = ["part(s) 3 of 3 missing"]
    elif case == "unfinished":
        (parts[1] / "manifest.json").unlink()
        names = [parts[1], "did not finish"]
    elif case == "corrupt":
        victim = parts[2] / shard_files(parts[2])[0]
        victim.write_bytes(victim.read_bytes()[:-1] + b"\x01")
        names = [victim, "sha256"]
    elif case == "whole":
        parts = [world["ref"]]
        names = [world["ref"], "not a part"]
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        names = [out, "--output"]
    assert_one_error(capsys, ["merge-shards", *parts, "--output", out], *map(str, names))
    assert shard_files(out) == [] and not (out / "manifest.json").exists()  # nothing adopted


def test_merge_across_filesystems_is_one_line(world, three_parts, tmp_path, capsys, monkeypatch):
    import errno

    def cross(src, dst, *a, **k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross)
    assert_one_error(capsys, ["merge-shards", *three_parts, "--output", tmp_path / "m"], "another filesystem")


# -- 3. HR lists, globs, several folders -------------------------------------------------------------
def test_list_file_glob_and_several_folders_give_the_unsplit_run(world, tmp_path, capsys):
    images = sorted(world["hr"].iterdir())
    listing = tmp_path / "lists" / "hr.txt"
    listing.parent.mkdir()
    # Relative lines are read from the list's folder; comments and blank lines are skipped; order is free.
    lines = ["# HR training images", ""] + [os.path.relpath(p, listing.parent) for p in reversed(images[:4])]
    listing.write_text("\n".join(lines + [str(p) for p in images[4:]]) + "\n")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for p in images[:4]:
        shutil.copy(p, a / p.name)
    for p in images[4:]:
        shutil.copy(p, b / p.name)
    forms = {"list": [listing], "glob": [f"{world['hr']}/*_*.png"], "folders": [b, a]}
    for form, hr in forms.items():
        out = tmp_path / form
        code, _, err = run_cli(capsys, generate(world, out, hr=hr))
        assert code == 0, (form, err)
        assert shard_files(out) == shard_files(world["ref"])
        for name in shard_files(out):
            assert sha256(out / name) == sha256(world["ref"] / name), (form, name)
        assert (out / "generate.json").read_bytes() == (world["ref"] / "generate.json").read_bytes()


def test_resolve_images_forms_and_errors(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("x.png", "y.jpg", "notes.md"):
        (tmp_path / "d" / name).write_bytes(b"")
    assert [p.name for p in resolve_images([str(tmp_path / "d")])] == ["x.png", "y.jpg"]
    assert [p.name for p in resolve_images(f"{tmp_path}/d/*.png")] == ["x.png"]
    listing = tmp_path / "l.txt"
    listing.write_text("d/x.png\n")
    assert resolve_images(listing) == [tmp_path / "d" / "x.png"]
    bad = tmp_path / "bad.txt"
    bad.write_text("d/x.png\nd/notes.md\n")
    cases = {str(bad): r"line 2 \('d/notes.md'\)", f"{tmp_path}/d/*.gif": "matched no image",
             str(tmp_path / "nope"): "no such folder", str(tmp_path / "d" / "x.png"): "an image, not a folder"}
    for spec, message in cases.items():
        with pytest.raises(AdlError, match=message):
            resolve_images(spec)
    with pytest.raises(AdlError, match="named twice"):
        resolve_images([str(tmp_path / "d"), str(listing)])
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(AdlError, match="names no images"):
        resolve_images(empty)


def test_a_missing_file_in_a_list_is_named(world, tmp_path, capsys):
    listing = tmp_path / "hr.txt"
    listing.write_text(f"{sorted(world['hr'].iterdir())[0]}\n{tmp_path / 'gone.png'}\n")
    assert_one_error(capsys, generate(world, tmp_path / "out", hr=[listing]), tmp_path / "gone.png")


# -- 4. shard layout --------------------------------------------------------------------------------
def test_shard_bytes_sets_the_count_from_one_samples_raw_bytes(world, tmp_path, capsys):
    raw = 3 * (32 * 32 + 16 * 16)  # one HR 32² and one LR 16² RGB patch
    out = tmp_path / "bytes"
    code, _, err = run_cli(capsys, generate(world, out, "--shard-bytes", 4 * raw + raw // 2, options=BASE))
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["shard_size"] == 4 and manifest["options"]["shard_bytes"] == 4 * raw + raw // 2
    for name in shard_files(world["ref"]):
        assert sha256(out / name) == sha256(world["ref"] / name)
    assert run_cli(capsys, [*generate(world, tmp_path / "both"), "--shard-bytes", "1M"])[0] == 2


@pytest.mark.parametrize("compression,level,filter_opts", [("lzf", None, ("lzf", None)), ("none", None, (None, None)),
                                                           ("gzip", 6, ("gzip", 6))])
def test_compression_is_applied_recorded_and_verified(world, tmp_path, capsys, compression, level, filter_opts):
    out = tmp_path / compression
    extra = ["--compression", compression] + (["--gzip-level", str(level)] if level is not None else [])
    assert run_cli(capsys, generate(world, out, *extra))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["compression"] == {"filter": compression, "level": level}
    for name in shard_files(out):
        with h5py.File(out / name, "r") as f:
            for key in ("hr", "lr"):
                assert (f[key].compression, f[key].compression_opts) == filter_opts
    whole = samples([world["ref"]])
    for key, value in samples([out]).items():
        assert np.array_equal(value, whole[key]), key
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    # A manifest that claims another filter is caught, naming the shard.
    manifest["compression"] = {"filter": "gzip", "level": 9}
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_one_error(capsys, ["verify-shards", out], out / "shard-00000.h5", "compressed as")


def test_bad_gzip_level(world, tmp_path, capsys):
    assert_one_error(capsys, generate(world, tmp_path / "x", "--gzip-level", "10"), "--gzip-level: 10 is not an integer 0 to 9", code=2)


# -- 6. readers -------------------------------------------------------------------------------------
def test_dict_mode_shard_dataset_in_a_two_worker_dataloader(world):
    truth = samples([world["ref"]])
    ds = ShardDataset(world["ref"], as_dict=True)
    item = ds[5]
    assert set(item) == {"lq", "gt", "lq_path", "gt_path"}
    # Sample 5 is row 1 of the second shard (shards of 4).
    assert item["lq_path"] == f"{world['ref'] / 'shard-00001.h5'}#lr/1"
    assert item["gt_path"] == f"{world['ref'] / 'shard-00001.h5'}#hr/1"
    batches = list(DataLoader(ds, batch_size=4, shuffle=False, num_workers=2))
    lq = torch.cat([b["lq"] for b in batches])
    gt = torch.cat([b["gt"] for b in batches])
    assert torch.equal(lq, torch.from_numpy(truth["lr"].transpose(0, 3, 1, 2).astype(np.float32) / 255))
    assert torch.equal(gt, torch.from_numpy(truth["hr"].transpose(0, 3, 1, 2).astype(np.float32) / 255))
    paths = [p for b in batches for p in b["gt_path"]]
    assert paths == [f"{world['ref'] / f'shard-{i // 4:05d}.h5'}#hr/{i % 4}" for i in range(SAMPLES)]


def code_block(after: str) -> str:
    """The first ```python block of docs/shards.md that follows the line containing ``after``."""
    text = (REPO / "docs" / "shards.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


def test_the_documented_h5py_reader_reads_every_sample(world, monkeypatch):
    monkeypatch.chdir(world["ref"].parent)
    (world["root"] / "shards").unlink(missing_ok=True)
    (world["root"] / "shards").symlink_to(world["ref"])
    scope: dict = {}
    exec(code_block("Without adl"), scope)  # noqa: S102  (the docs' own snippet)
    truth = samples([world["ref"]])
    assert np.array_equal(np.stack(scope["lrs"]), truth["lr"]) and np.array_equal(np.stack(scope["hrs"]), truth["hr"])


def test_shard_bytes_takes_sizes_with_units(world, tmp_path, capsys):
    import argparse

    from adl.options import byte_size as _byte_size

    assert [_byte_size(t) for t in ("1000", "1K", "1.5k", "256M", "256MiB", "1G", "2T")] == \
           [1000, 1024, 1536, 256 << 20, 256 << 20, 1 << 30, 2 << 40]
    for bad in ("abc", "0", "-5M", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _byte_size(bad)
    code, _, err = run_cli(capsys, generate(world, tmp_path / "x", "--shard-bytes", "lots", options=BASE))
    assert code == 2 and "--shard-bytes" in err and "Traceback" not in err
