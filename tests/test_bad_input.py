"""Bad input never gives a traceback: one line on stderr naming the file or option, a non-zero exit,
and nothing half-written left behind (no partial output under its final name, no ``.name.*.part.*``).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_error, leftovers, run_cli
from PIL import Image
from skimage import data

from adl.degradation import degrade
from adl.downsampler.apply import CHECKPOINT_KIND
from adl.imageio import read_image, write_png
from adl.kernels import synthetic_kernel
from adl.nets import Downsampler

TINY = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4", "--warmup", "0",
        "--update-every", "5", "--kernel-size", "8", "--retrieval-images", "2", "--log-every", "1",
        "--checkpoint-every", "1", "--device", "cpu"]
GARBAGE = b"this is not an image, a kernel, nor a checkpoint \x00\x01\x02" * 20


# -- helpers ---------------------------------------------------------------------------------------






def make_image(path: Path, size: int | tuple[int, int] = 64, seed: int = 0) -> Path:
    h, w = (size, size) if isinstance(size, int) else size
    write_png(path, np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
    return path


def truncated_png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[:96, :96]).save(buf, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def garbage_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GARBAGE)
    return path


CORRUPT = {"garbage": garbage_png, "truncated": truncated_png}


def copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.fixture
def hr_dir(tmp_path) -> Path:
    folder = tmp_path / "hr"
    make_image(folder / "a.png", 64, 1)
    make_image(folder / "c.png", 64, 2)
    return folder


@pytest.fixture
def pairs(tmp_path) -> dict[str, Path]:
    """HR photo crops and their k1-degraded LR images, paired by name (enough for an 8x8 retrieval)."""
    hr, lr = tmp_path / "pairs_hr", tmp_path / "pairs_lr"
    kernel = synthetic_kernel("k1", 2)
    for name in ("astronaut", "coffee"):
        image = getattr(data, name)()[:96, :96]
        write_png(hr / f"{name}.png", image)
        write_png(lr / f"{name}.png", degrade(image, kernel, 2))
    return {"hr": hr, "lr": lr}


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A well-formed (untrained) width-4 downsampler checkpoint, without the cost of training."""
    path = tmp_path / "ckpt" / "checkpoint.pt"
    path.parent.mkdir()
    torch.manual_seed(0)
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 4, "scale": 2}, "G": Downsampler(4).state_dict()}, path)
    return path


def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def train_args(hr, lr, out, iterations=1, extra=()):
    return ["train-downsampler", "--hr", hr, "--lr", lr, "--output", out, "--data-loss", "lfl",
            "--iterations", str(iterations), *TINY, *extra]


# -- corrupt images --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_degrade_stops_at_a_corrupt_image_and_leaves_no_partial_output(capsys, tmp_path, hr_dir, kind):
    bad = CORRUPT[kind](hr_dir / "b.png")
    out = tmp_path / "out"
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", "k1",
                              "--device", "cpu"], bad)
    assert read_image(out / "a.png").shape == (32, 32, 3)  # before the bad one: complete
    assert not (out / "b.png").exists() and not (out / "c.png").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["hr", "lr"])
def test_train_downsampler_names_a_corrupt_image_and_writes_no_checkpoint(capsys, tmp_path, unpaired_sets, where):
    folders = {k: copy_folder(unpaired_sets[k], tmp_path / k) for k in ("hr", "lr")}
    bad = truncated_png(folders[where] / "zz.png")
    run = tmp_path / "run"
    assert_one_error(capsys, train_args(folders["hr"], folders["lr"], run), bad)
    assert not (run / "checkpoint.pt").exists() and leftovers(tmp_path) == []
    # Once the bad file is gone, the same command trains: the failed attempt left nothing in the way.
    bad.unlink()
    assert run_cli(capsys, train_args(folders["hr"], folders["lr"], run))[0] == 0
    assert (run / "checkpoint.pt").exists()


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_retrieve_kernel_names_a_corrupt_lr_image(capsys, tmp_path, pairs, kind):
    bad = CORRUPT[kind](pairs["lr"] / "coffee.png")
    out = tmp_path / "k" / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--size", "8",
                              "--output", out, "--device", "cpu"], bad)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_psnr_names_a_corrupt_image_and_writes_no_csv(capsys, tmp_path, pairs):
    pred = copy_folder(pairs["hr"], tmp_path / "pred")
    bad = garbage_png(pred / "coffee.png")
    csv_path = tmp_path / "psnr.csv"
    assert_one_error(capsys, ["psnr", "--pred", pred, "--target", pairs["hr"], "--shave", "2",
                              "--csv", csv_path], bad)
    assert not csv_path.exists() and leftovers(tmp_path) == []


# -- empty, non-image and missing folders ----------------------------------------------------------
@pytest.fixture(params=["empty", "non-images", "missing"])
def no_images(request, tmp_path) -> Path:
    folder = tmp_path / f"no_images_{request.param}"
    if request.param != "missing":
        folder.mkdir()
    if request.param == "non-images":
        (folder / "notes.txt").write_text("hello")
        (folder / "kernel.npy").write_bytes(GARBAGE)
    return folder


def test_degrade_needs_images(capsys, tmp_path, no_images):
    out = tmp_path / "out"
    assert_one_error(capsys, ["degrade", "--input", no_images, "--output", out, "--scale", "2", "--kernel", "k0"],
                     "--input", no_images)
    assert not out.exists()


@pytest.mark.parametrize("option", ["--hr", "--lr"])
def test_train_downsampler_needs_images(capsys, tmp_path, unpaired_sets, no_images, option):
    folders = {"--hr": unpaired_sets["hr"], "--lr": unpaired_sets["lr"], option: no_images}
    run = tmp_path / "run"
    assert_one_error(capsys, train_args(folders["--hr"], folders["--lr"], run), option, no_images)
    assert not (run / "checkpoint.pt").exists()


@pytest.mark.parametrize("option", ["--hr", "--lr"])
def test_retrieve_kernel_needs_images(capsys, tmp_path, pairs, no_images, option):
    folders = {"--hr": pairs["hr"], "--lr": pairs["lr"], option: no_images}
    out = tmp_path / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", folders["--hr"], "--lr", folders["--lr"],
                              "--output", out, "--device", "cpu"], option, no_images)
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_retrieve_kernel_from_checkpoint_needs_images(capsys, tmp_path, no_images, checkpoint):
    out = tmp_path / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", no_images, "--checkpoint", checkpoint,
                              "--output", out, "--device", "cpu"], "--hr", no_images)
    assert not out.exists()


@pytest.mark.parametrize("side", ["pred", "target"])
def test_psnr_needs_images(capsys, tmp_path, pairs, no_images, side):
    folders = {"pred": pairs["hr"], "target": pairs["hr"], side: no_images}
    assert_one_error(capsys, ["psnr", "--pred", folders["pred"], "--target", folders["target"], "--shave", "0"],
                     no_images)


def test_downsample_needs_images(capsys, tmp_path, no_images, checkpoint):
    out = tmp_path / "out"
    assert_one_error(capsys, ["downsample", "--checkpoint", checkpoint, "--input", no_images, "--output", out,
                              "--device", "cpu"], "--input", no_images)
    assert not out.exists()


# -- images smaller than a patch (or than the model's reach) ---------------------------------------
def test_hr_image_smaller_than_the_hr_patch(capsys, tmp_path, unpaired_sets):
    hr = copy_folder(unpaired_sets["hr"], tmp_path / "hr")
    small = make_image(hr / "small.png", (60, 200))
    run = tmp_path / "run"
    assert_one_error(capsys, train_args(hr, unpaired_sets["lr"], run), small, "60", "--hr-patch")
    assert not (run / "checkpoint.pt").exists() and leftovers(tmp_path) == []


def test_lr_image_smaller_than_the_lr_patch_and_the_advice_works(capsys, tmp_path, unpaired_sets):
    lr = copy_folder(unpaired_sets["lr"], tmp_path / "lr")
    small = make_image(lr / "small.png", 40)
    run = tmp_path / "run"
    args = train_args(unpaired_sets["hr"], lr, run, extra=["--lr-patch", "48"])
    assert_one_error(capsys, args, small, "--lr-patch")
    assert not (run / "checkpoint.pt").exists() and leftovers(tmp_path) == []
    # Following the advice (lower --lr-patch) into the same --output must work, not be refused as
    # "started with other options": the failed attempt must not have pinned the options.
    args[args.index("48")] = "32"
    assert run_cli(capsys, args)[0] == 0
    assert (run / "checkpoint.pt").exists()


@pytest.mark.parametrize("size", [1, 2])
def test_downsample_names_an_image_too_small_for_the_model(capsys, tmp_path, checkpoint, size):
    src = tmp_path / "src"
    make_image(src / "a.png", 16)
    tiny = make_image(src / "b.png", size)
    out = tmp_path / "out"
    assert_one_error(capsys, ["downsample", "--checkpoint", checkpoint, "--input", src, "--output", out,
                              "--device", "cpu"], tiny)
    assert read_image(out / "a.png").shape == (8, 8, 3)
    assert not (out / "b.png").exists() and leftovers(tmp_path) == []


def test_retrieve_kernel_from_checkpoint_names_an_image_too_small_for_the_model(capsys, tmp_path, checkpoint):
    tiny = make_image(tmp_path / "hr" / "a.png", 2)
    out = tmp_path / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", tiny.parent, "--checkpoint", checkpoint, "--size", "2",
                              "--output", out, "--device", "cpu"], tiny)
    assert not out.exists()


def test_degrade_names_an_image_smaller_than_the_scale(capsys, tmp_path):
    tiny = make_image(tmp_path / "src" / "a.png", 3)
    out = tmp_path / "out"
    assert_one_error(capsys, ["degrade", "--input", tiny.parent, "--output", out, "--scale", "4",
                              "--kernel", "k0", "--device", "cpu"], tiny, "4")
    assert not (out / "a.png").exists()


# -- HR/LR pairing ---------------------------------------------------------------------------------
def test_retrieve_kernel_missing_pair(capsys, tmp_path, pairs):
    (pairs["lr"] / "coffee.png").unlink()
    out = tmp_path / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--size", "8",
                              "--output", out, "--device", "cpu"], pairs["hr"] / "coffee.png", "--lr")
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_retrieve_kernel_extra_lr_file(capsys, tmp_path, pairs):
    extra = make_image(pairs["lr"] / "zebra.png", 48)
    assert_one_error(capsys, ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--size", "8",
                              "--output", tmp_path / "kernel.npy", "--device", "cpu"], extra, "--hr")


def test_retrieve_kernel_lr_of_the_wrong_size(capsys, tmp_path, pairs):
    wrong = make_image(pairs["lr"] / "coffee.png", 40)
    out = tmp_path / "kernel.npy"
    assert_one_error(capsys, ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--size", "8",
                              "--output", out, "--device", "cpu"], wrong, "40x40", "48x48")
    assert not out.exists() and not out.with_suffix(".png").exists() and leftovers(tmp_path) == []


def test_psnr_missing_pair_and_size_mismatch(capsys, tmp_path, pairs):
    pred = copy_folder(pairs["hr"], tmp_path / "pred")
    (pred / "coffee.png").unlink()
    assert_one_error(capsys, ["psnr", "--pred", pred, "--target", pairs["hr"], "--shave", "2"],
                     pairs["hr"] / "coffee.png")
    wrong = make_image(pred / "coffee.png", 50)
    csv_path = tmp_path / "psnr.csv"
    assert_one_error(capsys, ["psnr", "--pred", pred, "--target", pairs["hr"], "--shave", "2", "--csv", csv_path],
                     wrong, "50x50", "96x96")
    assert not csv_path.exists()


def test_psnr_shave_too_large(capsys, pairs):
    assert_one_error(capsys, ["psnr", "--pred", pairs["hr"], "--target", pairs["hr"], "--shave", "48"], "48")


# -- kernel files ----------------------------------------------------------------------------------
class _Trap:
    """Unpickling this creates ``marker``: proof that a kernel file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _write_kernel(path: Path, case: str) -> Path:
    k1 = synthetic_kernel("k1", 2)
    if case == "3-D":
        np.save(path, np.stack([k1, k1]))
    elif case == "NaN":
        k = k1.copy()
        k[3, 4] = np.nan
        np.save(path, k)
    elif case == "sum 0":
        np.save(path, k1 - k1.mean())
    elif case == "negative sum":
        np.save(path, -k1)
    elif case == "odd size":
        np.save(path, np.full((5, 5), 1 / 25))
    elif case == "complex":
        np.save(path, k1.astype(np.complex128))
    elif case == "garbage":
        path.write_bytes(GARBAGE)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        buf = io.BytesIO()
        np.save(buf, k1)
        path.write_bytes(buf.getvalue()[:-40])
    elif case == "pickled object array":
        np.save(path, np.array([_Trap(path.parent / "unpickled")], dtype=object), allow_pickle=True)
    elif case == "raw pickle":
        path.write_bytes(pickle.dumps(_Trap(path.parent / "unpickled")))
    elif case == "folder":
        path.mkdir()
    else:
        raise AssertionError(case)
    return path


KERNEL_CASES = ["3-D", "NaN", "sum 0", "negative sum", "odd size", "complex", "garbage", "empty", "truncated",
                "pickled object array", "raw pickle", "folder"]


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_degrade_refuses_a_bad_kernel_file(capsys, tmp_path, hr_dir, case):
    kernel = _write_kernel(tmp_path / "bad.npy", case)
    out = tmp_path / "out"
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", kernel,
                              "--device", "cpu"], kernel)
    assert not out.exists()
    assert not (tmp_path / "unpickled").exists(), "the kernel file was unpickled"


@pytest.mark.parametrize("spec", ["k9", "K1", "missing.npy", "no/such/dir/kernel.npy"])
def test_degrade_refuses_an_unknown_kernel(capsys, tmp_path, hr_dir, spec):
    out = tmp_path / "out"
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", spec,
                              "--device", "cpu"], spec)
    assert not out.exists()


@pytest.mark.parametrize("case", ["3-D", "NaN", "negative sum", "garbage", "pickled object array", "folder"])
def test_kernel_similarity_refuses_a_bad_kernel_file(capsys, tmp_path, case):
    good = tmp_path / "good.npy"
    np.save(good, synthetic_kernel("k2", 2))
    bad = _write_kernel(tmp_path / "bad.npy", case)
    assert_one_error(capsys, ["kernel-similarity", good, bad], bad)
    assert_one_error(capsys, ["kernel-similarity", bad, good], bad)
    assert not (tmp_path / "unpickled").exists()


def test_kernel_similarity_missing_file(capsys, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, synthetic_kernel("k2", 2))
    assert_one_error(capsys, ["kernel-similarity", good, tmp_path / "nope.npy"], tmp_path / "nope.npy")


def test_a_kernel_summing_to_two_is_renormalised_with_a_warning(capsys, caplog, tmp_path, hr_dir):
    k = synthetic_kernel("k3", 2)
    np.save(tmp_path / "unit.npy", k)
    np.save(tmp_path / "double.npy", 2 * k)
    for name in ("unit", "double"):
        code, _, err = run_cli(capsys, ["degrade", "--input", hr_dir, "--output", tmp_path / name, "--scale", "2",
                                     "--kernel", tmp_path / f"{name}.npy", "--device", "cpu"])
        assert code == 0 and "error" not in err, err
    assert any("double.npy" in r.getMessage() and "renormalised" in r.getMessage() for r in caplog.records)
    for image in ("a.png", "c.png"):
        np.testing.assert_array_equal(read_image(tmp_path / "double" / image), read_image(tmp_path / "unit" / image))


# -- options ---------------------------------------------------------------------------------------
def test_unknown_data_loss_is_a_usage_error(capsys, tmp_path, unpaired_sets):
    args = train_args(unpaired_sets["hr"], unpaired_sets["lr"], tmp_path / "run")
    args[args.index("lfl")] = "foo"
    assert_one_error(capsys, args, "--data-loss", "foo", code=2)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option,value", [
    ("--lr-patch", "8"), ("--lr-patch", "0"), ("--lr-patch", "abc"), ("--iterations", "-1"),
    ("--iterations", "0"), ("--iterations", "1.5"), ("--scale", "3"), ("--scale", "x"), ("--batch-size", "0"),
    ("--hr-patch", "65"), ("--kernel-size", "7"), ("--warmup", "-2"), ("--alpha", "-1"), ("--alpha", "nan"),
    ("--lr-rate", "0"), ("--lr-rate", "inf"), ("--workers", "-1"),
])
def test_train_downsampler_options_out_of_range(capsys, tmp_path, unpaired_sets, option, value):
    args = train_args(unpaired_sets["hr"], unpaired_sets["lr"], tmp_path / "run", extra=[option, value])
    line = assert_one_error(capsys, args, option, code=_usage_or_value(option, value))
    assert "_positive_int" not in line and "_scale" not in line  # argparse's internal type names mean nothing
    assert not (tmp_path / "run").exists()


def _usage_or_value(option: str, value: str) -> int:
    """Every option out of range is a usage error (issue 12): exit 2, whether argparse's types or
    the trainer's cross-checks (patch sizes, kernel parity) refuse it."""
    return 2


@pytest.mark.parametrize("argv,option,code", [
    (["retrieve-kernel", "--scale", "3"], "--scale", 2),
    (["retrieve-kernel", "--size", "7"], "--size", 2),
    (["retrieve-kernel", "--size", "0"], "--size", 2),
    (["retrieve-kernel", "--images", "0"], "--images", 2),
    (["degrade", "--scale", "3"], "--scale", 2),
    (["downsample", "--scale", "3"], "--scale", 2),
    (["kernels", "--scale", "8"], "--scale", 2),
    (["psnr", "--shave", "x"], "--shave", 2),
])
def test_other_options_out_of_range(capsys, tmp_path, pairs, checkpoint, argv, option, code):
    base = {
        "retrieve-kernel": ["--hr", pairs["hr"], "--lr", pairs["lr"], "--output", tmp_path / "k.npy", "--device", "cpu"],
        "degrade": ["--input", pairs["hr"], "--output", tmp_path / "out", "--kernel", "k0", "--device", "cpu"],
        "downsample": ["--checkpoint", checkpoint, "--input", pairs["hr"], "--output", tmp_path / "out",
                       "--device", "cpu"],
        "kernels": ["--output", tmp_path / "out"],
        "psnr": ["--pred", pairs["hr"], "--target", pairs["hr"], "--csv", tmp_path / "k.npy"],
    }[argv[0]]
    assert_one_error(capsys, [*argv, *base], option, code=code)
    assert not (tmp_path / "out").exists() and not (tmp_path / "k.npy").exists()


# -- --device cuda without CUDA --------------------------------------------------------------------
def test_device_cuda_without_cuda(capsys, monkeypatch, tmp_path, hr_dir, pairs, unpaired_sets, checkpoint):
    no_cuda(monkeypatch)
    out = tmp_path / "out"
    commands = [
        ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", "k1"],
        ["train-downsampler", "--hr", unpaired_sets["hr"], "--lr", unpaired_sets["lr"], "--output", out,
         "--iterations", "1", "--lr-patch", "32"],
        ["downsample", "--checkpoint", checkpoint, "--input", hr_dir, "--output", out],
        ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--output", out / "k.npy"],
        ["retrieve-kernel", "--hr", pairs["hr"], "--checkpoint", checkpoint, "--output", out / "k.npy"],
    ]
    for argv in commands:
        for device in ("cuda", "cuda:1"):
            line = assert_one_error(capsys, [*argv, "--device", device], f"--device {device}")
            assert "--device cpu" in line  # the way out
        assert not out.exists()


def test_device_names_that_are_not_devices(capsys, monkeypatch, tmp_path, hr_dir):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "out"
    for device in ("gpu", "cuda:x", "cuda:-1", "cuda:0:1"):  # not a device name at all: a usage error
        assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", "k1",
                                  "--device", device], "--device", repr(device), code=2)
    # a well-formed name of a device that is not there: the environment's problem
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", out, "--scale", "2", "--kernel", "k1",
                              "--device", "cuda:3"], "--device cuda:3")
    assert not out.exists()


# -- checkpoints -----------------------------------------------------------------------------------
def _bad_checkpoints(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir()
    paths = {}
    paths["random bytes"] = folder / "random.pt"
    paths["random bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    paths["other kind"] = folder / "other.pt"
    torch.save({"kind": "other"}, paths["other kind"])
    paths["plain tensor"] = folder / "tensor.pt"
    torch.save(torch.zeros(3), paths["plain tensor"])
    paths["truncated"] = folder / "truncated.pt"
    paths["truncated"].write_bytes(good.read_bytes()[:2000])
    paths["kind only"] = folder / "kind_only.pt"
    torch.save({"kind": CHECKPOINT_KIND}, paths["kind only"])
    paths["wrong width"] = folder / "wrong_width.pt"
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 8, "scale": 2}, "G": Downsampler(4).state_dict()},
               paths["wrong width"])
    paths["pickled object"] = folder / "pickled.pt"
    torch.save({"kind": CHECKPOINT_KIND, "trap": _Trap(folder / "unpickled")}, paths["pickled object"])
    run_dir = folder / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(GARBAGE)
    paths["corrupt run dir"] = run_dir
    paths["empty run dir"] = folder / "empty_run"
    paths["empty run dir"].mkdir()
    paths["missing"] = folder / "missing.pt"
    return paths


def test_downsample_and_retrieve_kernel_refuse_bad_checkpoints(capsys, tmp_path, hr_dir, checkpoint):
    out = tmp_path / "out"
    for case, path in _bad_checkpoints(tmp_path / "bad", checkpoint).items():
        named = path / "checkpoint.pt" if path.is_dir() else path
        assert_one_error(capsys, ["downsample", "--checkpoint", path, "--input", hr_dir, "--output", out,
                                  "--device", "cpu"], "--checkpoint", named)
        assert_one_error(capsys, ["retrieve-kernel", "--hr", hr_dir, "--checkpoint", path, "--output",
                                  out / "k.npy", "--device", "cpu"], "--checkpoint", named)
        assert not out.exists(), case
    assert not (tmp_path / "bad" / "unpickled").exists(), "a checkpoint was unpickled"


def test_train_downsampler_refuses_a_corrupt_checkpoint_in_its_run_dir(capsys, tmp_path, unpaired_sets):
    run = tmp_path / "run"
    args = train_args(unpaired_sets["hr"], unpaired_sets["lr"], run, iterations=1)
    assert run_cli(capsys, args)[0] == 0
    good = (run / "checkpoint.pt").read_bytes()
    args[args.index("--iterations") + 1] = "2"
    for content in (GARBAGE, good[: len(good) // 3]):
        (run / "checkpoint.pt").write_bytes(content)
        assert_one_error(capsys, args, run / "checkpoint.pt")
        assert (run / "checkpoint.pt").read_bytes() == content  # left for the user to inspect
    torch.save({"kind": "other"}, run / "checkpoint.pt")
    assert_one_error(capsys, args, run / "checkpoint.pt")
    ckpt = torch.load(io.BytesIO(good), weights_only=True)
    del ckpt["G"]
    torch.save(ckpt, run / "checkpoint.pt")
    assert_one_error(capsys, args, run / "checkpoint.pt")
    assert leftovers(tmp_path) == []


def test_train_downsampler_refuses_an_unreadable_config(capsys, tmp_path, unpaired_sets):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(GARBAGE)
    assert_one_error(capsys, train_args(unpaired_sets["hr"], unpaired_sets["lr"], run), run / "config.json")
    assert not (run / "checkpoint.pt").exists()


# -- outputs that cannot be written ----------------------------------------------------------------
def test_output_paths_that_are_not_writable_as_asked(capsys, tmp_path, hr_dir, pairs):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    a_folder = tmp_path / "folder"
    a_folder.mkdir()
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", a_file, "--scale", "2", "--kernel", "k1",
                              "--device", "cpu"], a_file)
    assert_one_error(capsys, ["psnr", "--pred", pairs["hr"], "--target", pairs["hr"], "--shave", "2",
                              "--csv", a_folder], a_folder)
    base = ["retrieve-kernel", "--hr", pairs["hr"], "--lr", pairs["lr"], "--size", "8", "--device", "cpu"]
    assert_one_error(capsys, [*base, "--output", a_folder], a_folder)
    assert_one_error(capsys, [*base, "--output", tmp_path / "kernel"], "--output", ".npy")
    assert_one_error(capsys, [*base, "--output", a_file / "kernel.npy"], a_file)
    assert_one_error(capsys, ["degrade", "--input", hr_dir, "--output", hr_dir, "--scale", "2", "--kernel", "k1",
                              "--device", "cpu"], "--output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder", "hr", "pairs_hr", "pairs_lr"]
    assert list(a_folder.iterdir()) == [] and a_file.read_text() == "x"
    assert sorted(p.name for p in hr_dir.iterdir()) == ["a.png", "c.png"]
