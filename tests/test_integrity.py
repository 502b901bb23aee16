"""Issue 12: nothing corrupt is ever certified. Per-shard records on resume, fletcher32, verify-shards
on every kind of damage and malformed manifest, PNG pairs, and a fault-injection run of generate
(real SIGKILLs at random points, random damage, rerun, byte-equal payload).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_one_error, leftovers, run_cli, write_tiny_world

from adl.cli import main
from adl.imageio import write_png

# 12 images × 2 patches of 16² in shards of 3: 8 shards, some straddling two images.
GEN = ["--patch", "16", "--patches-per-image", "2", "--shard-size", "3", "--workers", "1", "--seed", "0"]
SHARDS, SAMPLES = 8, 24

pytestmark = pytest.mark.usefixtures("one_thread")


def shard_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).glob("shard-*.h5"))


def payload(folder: Path) -> dict[str, np.ndarray]:
    """Every dataset of every shard, read with h5py directly, in manifest order."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    parts: dict[str, list] = {"hr": [], "lr": [], "source": [], "offset": []}
    for entry in manifest["shards"]:
        with h5py.File(Path(folder) / entry["file"], "r") as f:
            for key in parts:
                parts[key].append(f[key][()])
    return {key: np.concatenate(value) for key, value in parts.items()}


def same_payload(a: Path, b: Path) -> bool:
    x, y = payload(a), payload(b)
    return all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """12 small HR crops, an ONNX export of a width-4 G with fixed random weights, a reference folder."""
    root = tmp_path_factory.mktemp("integrity")
    hr, run = write_tiny_world(root)
    model = root / "g.onnx"
    assert main(["-q", "export", "--checkpoint", str(run), "--output", str(model)]) == 0
    ref = root / "ref"
    assert main(["-q", *gen(model, hr, ref)]) == 0
    return {"root": root, "hr": hr, "run": run, "model": model, "ref": ref}


def gen(model, hr, out, *extra) -> list[str]:
    return ["generate", "--model", str(model), "--hr", str(hr), "--output", str(out), *GEN, *map(str, extra)]


def damage(victim: Path, rng: np.random.Generator) -> None:
    """One of the faults a crash or a bad disk leaves: a flipped byte, a truncation, a lost file."""
    kind = ("flip", "truncate", "delete")[int(rng.integers(3))]
    if kind == "flip":
        flip_byte(victim, float(rng.uniform(0.05, 0.95)))
    elif kind == "truncate":
        victim.write_bytes(victim.read_bytes()[: int(rng.integers(victim.stat().st_size))])
    else:
        victim.unlink()


def flip_byte(path: Path, where: float = 0.5) -> None:
    raw = bytearray(path.read_bytes())
    raw[int(len(raw) * where)] ^= 0xFF
    path.write_bytes(bytes(raw))


def unfinished_copy(tiny, dest: Path) -> Path:
    """The reference folder as an interrupted run leaves it: no manifest."""
    out = shutil.copytree(tiny["ref"], dest)
    (out / "manifest.json").unlink()
    return out


# -- 1. resume never adopts a damaged shard ---------------------------------------------------------
def test_resume_regenerates_damaged_and_unrecorded_shards(tiny, tmp_path, capsys):
    """The issue's case: a bit-flipped and a truncated shard in an interrupted folder. Before issue 12
    the rerun adopted both and wrote their hashes into the manifest."""
    out = unfinished_copy(tiny, tmp_path / "out")
    flip_byte(out / "shard-00002.h5")
    raw = (out / "shard-00005.h5").read_bytes()
    (out / "shard-00005.h5").write_bytes(raw[: len(raw) // 2])
    (out / "shard-00006.record.json").unlink()  # killed between the shard's rename and its record
    stamp = (out / "shard-00000.h5").stat().st_ino, (out / "shard-00000.h5").stat().st_mtime_ns

    code, _, err = run_cli(capsys, gen(tiny["model"], tiny["hr"], out))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "regenerating" in line]
    assert len(warnings) == 3, err
    assert "shard-00002.h5" in warnings[0] and "sha256" in warnings[0]
    assert "shard-00005.h5" in warnings[1] and "bytes" in warnings[1]
    assert "shard-00006.h5" in warnings[2] and "no record" in warnings[2]
    for name in shard_files(tiny["ref"]):
        assert (out / name).read_bytes() == (tiny["ref"] / name).read_bytes(), name
    assert (out / "manifest.json").read_bytes() == (tiny["ref"] / "manifest.json").read_bytes()
    assert ((out / "shard-00000.h5").stat().st_ino, (out / "shard-00000.h5").stat().st_mtime_ns) == stamp
    assert run_cli(capsys, ["verify-shards", out])[0] == 0


def test_records_from_other_settings_are_not_adopted(tiny, tmp_path, capsys):
    out = unfinished_copy(tiny, tmp_path / "out")
    record = json.loads((out / "shard-00003.record.json").read_text())
    record["options_key"] = "0" * 64
    (out / "shard-00003.record.json").write_text(json.dumps(record))
    (out / "shard-00004.record.json").write_text("{not json")
    code, _, err = run_cli(capsys, gen(tiny["model"], tiny["hr"], out))
    assert code == 0, err
    assert "shard-00003.h5: its record is from other settings; regenerating it" in err
    assert "shard-00004.h5: its record is unreadable; regenerating it" in err
    assert (out / "manifest.json").read_bytes() == (tiny["ref"] / "manifest.json").read_bytes()


def test_rerun_of_a_finished_folder_repairs_a_damaged_shard(tiny, tmp_path, capsys):
    out = shutil.copytree(tiny["ref"], tmp_path / "done")
    code, _, err = run_cli(capsys, gen(tiny["model"], tiny["hr"], out))
    assert code == 0 and "already complete" in err
    flip_byte(out / "shard-00007.h5", 0.7)
    code, _, err = run_cli(capsys, gen(tiny["model"], tiny["hr"], out))
    assert code == 0 and "shard-00007.h5" in err and "already complete" not in err
    assert (out / "shard-00007.h5").read_bytes() == (tiny["ref"] / "shard-00007.h5").read_bytes()
    assert run_cli(capsys, ["verify-shards", out])[0] == 0


def test_fletcher32_catches_a_flipped_byte_inside_compressed_data(tiny, tmp_path, capsys):
    """With the manifest's hash brought up to date (as the old resume did), decoding still fails."""
    out = shutil.copytree(tiny["ref"], tmp_path / "flipped")
    path = out / "shard-00001.h5"
    with h5py.File(path, "r") as f:  # the byte offset of a chunk of lr inside the file
        start = f["lr"].id.get_chunk_info(1).byte_offset
    flip_byte(path, (start + 20) / path.stat().st_size)
    manifest = json.loads((out / "manifest.json").read_text())
    import hashlib

    manifest["shards"][1]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_one_error(capsys, ["verify-shards", out], path, "dataset lr does not decode")


def test_verify_shards_refuses_a_stray_shard(tiny, tmp_path, capsys):
    out = shutil.copytree(tiny["ref"], tmp_path / "stray")
    shutil.copy(out / "shard-00000.h5", out / "shard-00009.h5")
    assert_one_error(capsys, ["verify-shards", out], out / "shard-00009.h5", "not listed")


# -- 3. malformed input to verify-shards ------------------------------------------------------------
@pytest.mark.parametrize("edit, field", [
    (lambda m: [], "(top level)"),
    (lambda m: {}, "format_version"),
    (lambda m: {**m, "shards": "shard-00000.h5"}, "shards"),
    (lambda m: {**m, "shards": [{k: v for k, v in m["shards"][0].items() if k != "bytes"}] + m["shards"][1:]},
     "shards[0].bytes"),
    (lambda m: {**m, "total_samples": "24"}, "total_samples"),
    (lambda m: {**m, "model": {"path": "g.onnx", "sha256": "nope"}}, "model.sha256"),
])
def test_structurally_bad_manifest_is_one_line_per_field(tiny, tmp_path, capsys, edit, field):
    out = shutil.copytree(tiny["ref"], tmp_path / "bad")
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(edit(manifest)))
    code, _, err = run_cli(capsys, ["verify-shards", out])
    assert code == 1 and "Traceback" not in err
    lines = err.splitlines()
    assert all(line.startswith("adl verify-shards: error: ") for line in lines), err
    assert any(f"manifest.json: {field}:" in line for line in lines), err
    if edit(manifest) != {}:
        assert len(lines) == 2  # the violation and the one line saying what to do


def test_manifest_schema_is_published_and_matches_what_generate_writes(tiny):
    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "adl" / "shards" / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads((tiny["ref"] / "manifest.json").read_text()), schema)


def test_verify_shards_says_what_a_folder_is(tiny, tmp_path, capsys):
    assert_one_error(capsys, ["verify-shards", tmp_path / "nope"], tmp_path / "nope", "no such folder")
    assert_one_error(capsys, ["verify-shards", tiny["hr"]], tiny["hr"], "not an adl generate folder")
    assert_one_error(capsys, ["verify-shards", tiny["model"]], tiny["model"], "is a file")
    out = unfinished_copy(tiny, tmp_path / "unfinished")
    assert_one_error(capsys, ["verify-shards", out], out, "did not finish")


def test_verify_png_pairs(tiny, tmp_path, capsys):
    out = tmp_path / "png"
    assert run_cli(capsys, [*gen(tiny["model"], tiny["hr"], out), "--format", "png"])[0] == 0
    code, stdout, _ = run_cli(capsys, ["verify-shards", out])
    assert code == 0 and "24 PNG pair(s)" in stdout

    def damaged(name: str) -> Path:
        return shutil.copytree(out, tmp_path / name)

    bad = damaged("undecodable")
    (bad / "lr" / "03_coffee_001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert_one_error(capsys, ["verify-shards", bad], bad / "lr" / "03_coffee_001.png", "cannot read")
    small = damaged("wrong_size")
    write_png(small / "lr" / "00_astronaut_000.png", np.zeros((7, 8, 3), np.uint8))
    assert_one_error(capsys, ["verify-shards", small], small / "lr" / "00_astronaut_000.png", "scale 2")
    counted = damaged("count")
    manifest = json.loads((counted / "manifest.json").read_text())
    (counted / "manifest.json").write_text(json.dumps({**manifest, "pairs": 23}))
    assert_one_error(capsys, ["verify-shards", counted], "pairs is 23")
    stray = damaged("stray")
    shutil.copy(stray / "hr" / "00_astronaut_000.png", stray / "hr" / "zz.png")
    assert_one_error(capsys, ["verify-shards", stray], stray / "hr" / "zz.png", "not listed")


# -- fault injection ---------------------------------------------------------------------------------
# The child counts events (each dataset created, each rename, before and after) and SIGKILLs itself
# at event N: a real kill, no cleanup, at a point that varies with N and is reproducible.
KILL_AT = """
import os, signal, sys
import h5py
at, count = int(sys.argv[1]), [0]
def tick():
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
replace, create = os.replace, h5py.Group.create_dataset
def replacing(a, b):
    tick(); replace(a, b); tick()
def creating(self, *args, **kwargs):
    tick(); return create(self, *args, **kwargs)
os.replace, h5py.Group.create_dataset = replacing, creating
from adl.cli import main
sys.exit(main(sys.argv[2:]))
"""
# The lock's pid file and generate.json (2 renames, 2 events each), then per shard 4 datasets, its
# rename and its record's rename; the manifest's rename comes after the last of these.
EVENTS = 2 * 2 + SHARDS * (4 + 2 + 2)
RUNS = 20


def test_fault_injection_kill_damage_rerun(tiny, tmp_path, capsys):
    """RUNS generations killed at random events; in every other run a random finished shard is then
    damaged (a flipped byte, truncation or deletion); the rerun must complete, pass verify-shards and
    hold the uninterrupted run's payload."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    faults = mismatches = 0
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        out = tmp_path / f"run{seed}"
        at = int(rng.integers(1, EVENTS + 1))  # never past the last shard's record: the manifest is not written
        args = ["-q", *gen(tiny["model"], tiny["hr"], out), "--writers", "0"]
        proc = subprocess.run([sys.executable, "-c", KILL_AT, str(at), *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (at, proc.stderr)
        assert not (out / "manifest.json").exists()
        finished = shard_files(out)
        if seed % 2 and finished:
            victim = out / finished[int(rng.integers(len(finished)))]
            damage(victim, rng)
            faults += 1
        code, _, err = run_cli(capsys, args[1:])
        assert code == 0, (seed, err)
        assert run_cli(capsys, ["verify-shards", out])[0] == 0, seed
        assert leftovers(out) == []
        mismatches += not same_payload(out, tiny["ref"])
        shutil.rmtree(out)
    print(f"fault injection: {RUNS} killed runs, {faults} damaged shards, {mismatches} mismatches")
    assert faults >= RUNS // 3 and mismatches == 0


def test_format_1_folders_are_still_read_and_verified(tiny, tmp_path, capsys):
    """A version 1 folder (no records, no fletcher32), as adl 0.1 before issue 12 wrote it."""
    import hashlib

    from adl.shards.dataset import ShardDataset

    out = shutil.copytree(tiny["ref"], tmp_path / "v1", ignore=shutil.ignore_patterns("*.record.json"))
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["shards"]:
        path = out / entry["file"]
        with h5py.File(path, "r") as f:
            parts, attrs = {k: f[k][()] for k in f}, dict(f.attrs)
        path.unlink()
        with h5py.File(path, "w", track_order=False) as f:
            for name in ("hr", "lr"):
                f.create_dataset(name, data=parts[name], chunks=(1, *parts[name].shape[1:]), compression="gzip",
                                 compression_opts=1, track_times=False)
            f.create_dataset("source", data=parts["source"], dtype=h5py.string_dtype(), track_times=False)
            f.create_dataset("offset", data=parts["offset"], track_times=False)
            f.attrs.update({**attrs, "format_version": 1})
        entry.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    manifest["format_version"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest))

    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    ds = ShardDataset(out)
    truth = payload(tiny["ref"])
    assert len(ds) == SAMPLES and np.array_equal(ds.raw(5)[1], truth["hr"][5])
    code, _, err = run_cli(capsys, gen(tiny["model"], tiny["hr"], out))
    assert code == 0 and "already complete" in err  # a finished version 1 folder is left as it is
    flip_byte(out / "shard-00004.h5")
    assert_one_error(capsys, ["verify-shards", out], out / "shard-00004.h5", "sha256")


SLOW = """
import sys, time
import adl.shards.backends as g
call = g.OnnxBackend.downsample
def slow(self, image):
    time.sleep(0.1)
    return call(self, image)
g.OnnxBackend.downsample = slow
from adl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_generations_into_one_folder(tiny, tmp_path, capsys):
    """The issue's case: a second generate with another --patch while the first runs. It is refused
    at once, naming the first process; the first completes exactly as if alone."""
    import time

    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "-c", SLOW, "-q", *gen(tiny["model"], tiny["hr"], out)],
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 60
    while not (out / ".adl.lock.pid").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    second = gen(tiny["model"], tiny["hr"], out)
    second[second.index("--patch") + 1] = "8"
    assert_one_error(capsys, second, out, f"in use by process {first.pid}")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    assert same_payload(out, tiny["ref"])
    assert (out / "manifest.json").read_bytes() == (tiny["ref"] / "manifest.json").read_bytes()


# -- 4. --on-error skip ------------------------------------------------------------------------------
def test_on_error_skip_lists_bad_images_and_generates_the_rest(tiny, tmp_path, capsys):
    hr = shutil.copytree(tiny["hr"], tmp_path / "hr")
    (hr / "05_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_png(hr / "06_tiny.png", np.zeros((8, 8, 3), np.uint8))
    stop = tmp_path / "stop"
    assert_one_error(capsys, gen(tiny["model"], hr, stop), hr / "05_broken.png")
    assert not (stop / "manifest.json").exists()

    out = tmp_path / "skip"
    code, stdout, err = run_cli(capsys, [*gen(tiny["model"], hr, out), "--on-error", "skip"])
    assert code == 0, err
    assert "24 pair(s)" in stdout and "2 image(s) skipped" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in manifest["skipped"]] == ["05_broken.png", "06_tiny.png"]
    assert "cannot read image" in manifest["skipped"][0]["reason"] and "patch" in manifest["skipped"][1]["reason"]
    assert sum("skipping" in line for line in err.splitlines()) == 2
    assert same_payload(out, tiny["ref"])  # the same samples as a folder without the two bad files
    assert run_cli(capsys, ["verify-shards", out])[0] == 0
    (out / "manifest.json").unlink()  # interrupted just before the end: the rerun resumes, adopting every shard
    code, _, err = run_cli(capsys, [*gen(tiny["model"], hr, out), "--on-error", "skip"])
    assert code == 0 and "regenerating" not in err and json.loads((out / "manifest.json").read_text()) == manifest


def test_after_removing_a_bad_file_the_message_says_restart_and_restart_works(tiny, tmp_path, capsys):
    hr = shutil.copytree(tiny["hr"], tmp_path / "hr")
    (hr / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert_one_error(capsys, gen(tiny["model"], hr, out), hr / "zz_broken.png", "replace or remove the file")
    assert shard_files(out)  # shards of the images before it were written
    (hr / "zz_broken.png").unlink()
    line = assert_one_error(capsys, gen(tiny["model"], hr, out), "--hr", "--restart", "new --output")
    assert "other settings" in line
    code, _, err = run_cli(capsys, [*gen(tiny["model"], hr, out), "--restart"])
    assert code == 0, err
    assert (out / "manifest.json").read_bytes() == (tiny["ref"] / "manifest.json").read_bytes()
    assert same_payload(out, tiny["ref"]) and leftovers(out) == []


# -- 5. --format lmdb (issue 18): the same promises ---------------------------------------------------
LMDB = ["--format", "lmdb"]


@pytest.fixture(scope="module")
def lmdb_ref(tiny) -> Path:
    out = tiny["root"] / "lmdb_ref"
    assert main(["-q", *gen(tiny["model"], tiny["hr"], out), *LMDB]) == 0
    return out


def lmdb_record(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())["lmdb"]


def test_lmdb_layout_is_basicsrs_and_deterministic(tiny, lmdb_ref, tmp_path, capsys):
    for side, shape in (("hr", "(16,16,3)"), ("lr", "(8,8,3)")):
        assert sorted(p.name for p in (lmdb_ref / f"{side}.lmdb").iterdir()) == ["data.mdb", "lock.mdb", "meta_info.txt"]
        lines = (lmdb_ref / f"{side}.lmdb" / "meta_info.txt").read_text().splitlines()
        assert len(lines) == SAMPLES and lines[0] == f"00_astronaut_000.png {shape} 1"
    names = sorted(p.name for p in lmdb_ref.iterdir() if p.name not in (".adl.lock", ".adl.lock.pid"))
    assert names == ["generate.json", "hr.lmdb", "lr.lmdb", "manifest.json"]  # the staged shards are gone
    import lmdb

    env = lmdb.open(str(lmdb_ref / "hr.lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        import io

        from PIL import Image

        first = np.asarray(Image.open(io.BytesIO(txn.get(b"00_astronaut_000"))))
    env.close()
    assert np.array_equal(first, payload(tiny["ref"])["hr"][0])
    again = tmp_path / "again"
    assert run_cli(capsys, [*gen(tiny["model"], tiny["hr"], again), *LMDB])[0] == 0
    assert lmdb_record(again) == lmdb_record(lmdb_ref)  # same bytes (sha256) on both sides
    code, stdout, _ = run_cli(capsys, ["verify-shards", lmdb_ref])
    assert code == 0 and "24 LMDB pair(s)" in stdout


def test_lmdb_damage_is_caught_and_a_rerun_repairs_it(tiny, lmdb_ref, tmp_path, capsys):
    out = shutil.copytree(lmdb_ref, tmp_path / "damaged")
    flip_byte(out / "hr.lmdb" / "data.mdb", 0.6)
    assert_one_error(capsys, ["verify-shards", out], out / "hr.lmdb" / "data.mdb", "sha256")
    code, _, err = run_cli(capsys, [*gen(tiny["model"], tiny["hr"], out), *LMDB])
    assert code == 0 and "generating the databases again" in err, err
    assert lmdb_record(out) == lmdb_record(lmdb_ref) and run_cli(capsys, ["verify-shards", out])[0] == 0
    (out / "lr.lmdb" / "meta_info.txt").write_text("")
    assert_one_error(capsys, ["verify-shards", out], out / "lr.lmdb" / "meta_info.txt", "changed")


def test_lmdb_parts_and_merge_are_refused_in_one_line(tiny, lmdb_ref, tmp_path, capsys):
    assert_one_error(capsys, [*gen(tiny["model"], tiny["hr"], tmp_path / "p"), *LMDB, "--part", "1/2"],
                     "--part 1/2", "--format lmdb", code=2)
    assert_one_error(capsys, ["merge-shards", lmdb_ref, "--output", tmp_path / "m"], lmdb_ref, "not a part")


def test_lmdb_refuses_names_basicsr_would_cut(tiny, tmp_path, capsys):
    hr = shutil.copytree(tiny["hr"], tmp_path / "hr")
    (hr / "00_astronaut.png").rename(hr / "00.astronaut.png")
    assert_one_error(capsys, [*gen(tiny["model"], hr, tmp_path / "out"), *LMDB], "00.astronaut.png", "rename")


LMDB_RUNS = 10


def test_fault_injection_kill_damage_rerun_lmdb(tiny, lmdb_ref, tmp_path, capsys):
    """As test_fault_injection_kill_damage_rerun, for --format lmdb: kills at random events (the staged
    shards' datasets and renames, both databases' renames), then damage to a staged shard or a database."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    events = 2 * 2 + SHARDS * (4 + 2 + 2) + 2 * 2
    faults = 0
    for seed in range(LMDB_RUNS):
        rng = np.random.default_rng(100 + seed)
        out = tmp_path / f"run{seed}"
        at = int(rng.integers(1, events + 1))
        args = ["-q", *gen(tiny["model"], tiny["hr"], out), *LMDB, "--writers", "0"]
        proc = subprocess.run([sys.executable, "-c", KILL_AT, str(at), *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (at, proc.stderr)
        assert not (out / "manifest.json").exists()
        victims = sorted((out / ".staging").glob("shard-*.h5")) + sorted(out.glob("*.lmdb/data.mdb"))
        if seed % 2 and victims:
            victim = victims[int(rng.integers(len(victims)))]
            damage(victim, rng)
            faults += 1
        code, _, err = run_cli(capsys, args[1:])
        assert code == 0, (seed, at, err)
        assert run_cli(capsys, ["verify-shards", out])[0] == 0, seed
        assert leftovers(out) == [] and not (out / ".staging").exists()
        assert lmdb_record(out) == lmdb_record(lmdb_ref), (seed, at)
        shutil.rmtree(out)
    print(f"lmdb fault injection: {LMDB_RUNS} killed runs, {faults} damaged files, 0 mismatches")
    assert faults >= LMDB_RUNS // 3
