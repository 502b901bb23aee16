"""End-to-end behaviour of ``adl train-downsampler``: every data term, exact resume, run-folder rules."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_error

from adl.cli import main
from adl.downsampler.options import DownsamplerOptions
from adl.downsampler.train import DownsamplerTrainer
from adl.imageio import list_images, read_image

TINY = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4",
        "--warmup", "2", "--update-every", "3", "--kernel-size", "8", "--retrieval-images", "2",
        "--log-every", "2", "--checkpoint-every", "4", "--device", "cpu"]


def train_args(sets, out, iterations, loss="adl", extra=()):
    return ["-q", "train-downsampler", "--hr", str(sets["hr"]), "--lr", str(sets["lr"]),
            "--data-loss", loss, "--output", str(out), "--iterations", str(iterations), *TINY, *extra]


def load(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"]
    for net in ("G", "D"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs"


def log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("loss", ["adl", "lfl", "lfl-gauss", "bicubic", "avgpool"])
def test_each_data_loss_trains_and_its_checkpoint_is_usable(unpaired_sets, tmp_path, loss):
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 5, loss)) == 0
    ckpt = load(run)
    assert ckpt["iteration"] == 5 and ckpt["seed"] == 0 and ckpt["config"]["data_loss"] == loss
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 0 and {"adl", "torch", "numpy", "python"} <= set(config["versions"])
    assert config["options"]["alpha"] == (100.0 if loss == "adl" else 200.0)
    rows = log_rows(run)
    assert [int(r["iteration"]) for r in rows] == [2, 4, 5]
    assert all(np.isfinite(float(r[c])) for r in rows for c in ("loss_d", "loss_g_adv", "loss_data"))
    if loss == "adl":
        # Warm-up of 2 iterations on LFL, then retrievals at iterations 2 and 5 (every 3).
        assert [r["data_term"] for r in rows] == ["lfl", "adl", "adl"]
        assert (run / "kernel_2.npy").exists() and not (run / "kernel_5.npy").exists()
        kernel = np.load(run / "kernel.npy")
        assert kernel.shape == (8, 8) and abs(kernel.sum() - 1) < 1e-9
        assert torch.equal(ckpt["kernel"], torch.from_numpy(np.load(run / "kernel_2.npy")))
    else:
        assert {r["data_term"] for r in rows} == {loss} and ckpt["kernel"] is None

    out = tmp_path / "down"
    assert main(["-q", "downsample", "--checkpoint", str(run), "--input", str(unpaired_sets["hr"]),
                 "--output", str(out), "--device", "cpu"]) == 0
    for path in list_images(unpaired_sets["hr"]):
        assert read_image(out / path.name).shape == (64, 64, 3)


def test_retrieve_kernel_from_checkpoint_matches_training_retrieval(unpaired_sets, tmp_path):
    """The CLI's --checkpoint path and the trainer's in-loop retrieval are the same computation."""
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 2, "adl", ["--update-every", "1"])) == 0
    # The run ended at iteration 2; the kernel of its final G is what retrieve-kernel must return.
    assert main(train_args(unpaired_sets, run, 3, "adl", ["--update-every", "1"])) == 0
    assert (run / "kernel_2.npy").exists()
    ckpt_run = tmp_path / "run2"
    assert main(train_args(unpaired_sets, ckpt_run, 2, "adl", ["--update-every", "1"])) == 0
    out = tmp_path / "k.npy"
    assert main(["-q", "retrieve-kernel", "--hr", str(unpaired_sets["hr"]), "--checkpoint", str(ckpt_run),
                 "--scale", "2", "--size", "8", "--images", "2", "--output", str(out), "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.load(out), np.load(run / "kernel_2.npy"), atol=1e-12)
    assert (tmp_path / "k.png").exists()


@pytest.mark.parametrize("extra", [["--patch-sampling", "uniform"], ["--patch-sampling", "texture"],
                                   ["--disc-view", "local"], ["--disc-steps", "2"]],
                         ids=["uniform", "texture", "local-D", "disc-steps"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(unpaired_sets, tmp_path, extra):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(train_args(unpaired_sets, straight, 9, extra=extra)) == 0
    assert main(train_args(unpaired_sets, split, 5, extra=extra)) == 0
    assert main(train_args(unpaired_sets, split, 9, extra=extra)) == 0
    assert_same_weights(load(straight), load(split))
    for a, b in zip(load(straight)["opt_G"]["state"].values(), load(split)["opt_G"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    assert [r["iteration"] for r in log_rows(split)] == ["2", "4", "5", "6", "8", "9"]


def test_disc_steps_updates_d_that_many_times_on_batches_of_its_own(unpaired_sets, tmp_path):
    """--disc-steps 2: Adam counts two D steps per G step, and an iteration's loader batch holds two
    different batches of --batch-size patches, the first being what --disc-steps 1 draws."""
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 3, extra=["--disc-steps", "2"])) == 0
    ckpt = load(run)
    assert {float(v["step"]) for v in ckpt["opt_D"]["state"].values()} == {6.0}
    assert {float(v["step"]) for v in ckpt["opt_G"]["state"].values()} == {3.0}

    def first_batch(steps, folder):
        options = DownsamplerOptions(hr=str(unpaired_sets["hr"]), lr=str(unpaired_sets["lr"]), iterations=1,
                                     batch_size=2, lr_patch=32, width=4, disc_width=4, disc_steps=steps,
                                     device="cpu")
        return next(iter(DownsamplerTrainer(options, tmp_path / folder).batches()))

    hr_two, lr_two = first_batch(2, "two")
    hr_one, lr_one = first_batch(1, "one")
    assert hr_two.shape[0] == lr_two.shape[0] == 4 and hr_one.shape[0] == 2
    assert torch.equal(hr_two[:2], hr_one) and torch.equal(lr_two[:2], lr_one)
    assert not torch.equal(hr_two[:2], hr_two[2:]) and not torch.equal(lr_two[:2], lr_two[2:])


def test_a_run_from_before_an_added_option_resumes_at_its_old_value_only(unpaired_sets, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 2)) == 0
    config = json.loads((run / "config.json").read_text())
    for key in ("disc_steps", "disc_view", "patch_sampling"):
        del config["options"][key]
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(train_args(unpaired_sets, run, 3, extra=["--disc-steps", "2"])) == 1
    assert "--disc-steps 1 (now 2)" in capsys.readouterr().err
    assert main(train_args(unpaired_sets, run, 3)) == 0 and load(run)["iteration"] == 3


def test_finished_run_is_left_alone(unpaired_sets, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 3)) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert main(train_args(unpaired_sets, run, 3)) == 0
    assert (run / "checkpoint.pt").read_bytes() == before


def test_changed_options_or_data_are_refused(unpaired_sets, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 2)) == 0
    capsys.readouterr()
    assert main(train_args(unpaired_sets, run, 4, extra=["--alpha", "5"])) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--alpha" in err and str(run) in err
    assert main(train_args(unpaired_sets, run, 4, "lfl")) == 1
    assert "--data-loss" in capsys.readouterr().err
    other_hr = tmp_path / "hr"
    other_hr.mkdir()
    for p in list_images(unpaired_sets["hr"]):
        (other_hr / p.name).write_bytes(p.read_bytes())
    (other_hr / "extra.png").write_bytes(p.read_bytes())
    args = train_args(unpaired_sets, run, 4)
    args[args.index("--hr") + 1] = str(other_hr)
    assert main(args) == 1
    assert "--hr" in capsys.readouterr().err
    assert load(run)["iteration"] == 2


def test_scale4_trains_g_twice_end_to_end(unpaired_sets, tmp_path):
    run = tmp_path / "run4"
    args = train_args(unpaired_sets, run, 3, "adl", ["--scale", "4", "--kernel-size", "16"])
    assert main(args) == 0
    ckpt = load(run)
    assert ckpt["config"]["hr_patch"] == 128 and ckpt["kernel"].shape == (16, 16)
    out = tmp_path / "down4"
    assert main(["-q", "downsample", "--checkpoint", str(run), "--input", str(unpaired_sets["hr"]),
                 "--output", str(out), "--device", "cpu"]) == 0
    assert read_image(next(out.iterdir())).shape == (32, 32, 3)


def _spawn(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "adl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"training ended before the signal: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for training progress"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_resume_after_a_signal_is_bit_identical(unpaired_sets, tmp_path, signum):
    total = 200
    reference = tmp_path / "reference"
    assert main(train_args(unpaired_sets, reference, total, "lfl", ["--checkpoint-every", "10"])) == 0

    run = tmp_path / "run"
    args = train_args(unpaired_sets, run, total, "lfl", ["--checkpoint-every", "10"])
    proc = _spawn(args)
    _wait_for(lambda: (run / "checkpoint.pt").exists(), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signum
        # stderr is not a terminal here, so no progress bars: the error is the only line.
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "rerun the same command to resume" in lines[0], err
        assert "Traceback" not in err
    stopped_at = load(run)["iteration"]
    assert 0 < stopped_at < total
    assert main(args) == 0
    assert_same_weights(load(reference), load(run))
    iterations = [int(r["iteration"]) for r in log_rows(run)]
    assert iterations == sorted(set(iterations)) and iterations[-1] == total


def test_summary_marks_a_finished_run_and_goes_away_while_it_is_extended(unpaired_sets, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(unpaired_sets, run, 3, "lfl")) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["seed"] == 0 and summary["last_log_row"]["iteration"] == "3"
    import hashlib

    assert summary["checkpoint_sha256"] == hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest()
    proc = _spawn(train_args(unpaired_sets, run, 400, "lfl", ["--checkpoint-every", "10"]))
    _wait_for(lambda: load(run)["iteration"] >= 10, proc)
    assert not (run / "summary.json").exists()  # an unfinished run has no summary
    proc.kill()
    proc.communicate(timeout=60)


def validation_args(sets) -> list[str]:
    """The LR sources' HR crops and their true k3 LR: a validation set with a known kernel."""
    return ["--val-hr", str(sets["src"]), "--val-lr", str(sets["lr"]), "--true-kernel", "k3", "--val-every", "3"]


def test_validation_never_changes_training_and_resumes_bit_identically(unpaired_sets, tmp_path):
    """A run without validation and a run with it, interrupted and resumed, end with the same bytes of G and D."""
    plain, validated = tmp_path / "plain", tmp_path / "validated"
    assert main(train_args(unpaired_sets, plain, 9)) == 0
    assert main(train_args(unpaired_sets, validated, 5, extra=validation_args(unpaired_sets))) == 0
    assert main(train_args(unpaired_sets, validated, 9, extra=validation_args(unpaired_sets))) == 0
    assert_same_weights(load(plain), load(validated))
    assert torch.equal(load(plain)["kernel"], load(validated)["kernel"])
    rows = {int(r["iteration"]): r for r in log_rows(validated)}
    assert sorted(rows) == [2, 3, 4, 5, 6, 8, 9]
    assert {i for i, r in rows.items() if r["val_lr_psnr"]} == {3, 6, 9}
    assert {i for i, r in rows.items() if r["val_kernel_similarity"]} == {3, 6, 9}
    # Retrievals after iterations 2, 5 and 8 (warm-up 2, every 3): each shows up in the next row.
    assert {i for i, r in rows.items() if r["adl_kernel_similarity"]} == {3, 6, 9}
    assert all(0 < float(r["val_kernel_similarity"]) <= 1 for r in rows.values() if r["val_kernel_similarity"])


def test_validation_metrics_equal_the_commands_that_compute_them(unpaired_sets, tmp_path):
    """The logged LR PSNR and kernel similarity are those of `adl downsample` + `adl psnr --shave 8` and of
    `adl retrieve-kernel` + kernel_similarity on the saved G, and the ADL column scores the saved kernel."""
    from adl.kernels import synthetic_kernel
    from adl.metrics import kernel_similarity

    run = tmp_path / "run"
    # One retrieval image: validation's kernel comes from the first val HR image only, as ADL's from the first HR.
    extra = [*validation_args(unpaired_sets), "--retrieval-images", "1"]
    assert main(train_args(unpaired_sets, run, 6, extra=extra)) == 0
    last = log_rows(run)[-1]
    down, table, kernel = tmp_path / "down", tmp_path / "psnr.csv", tmp_path / "k.npy"
    assert main(["-q", "downsample", "--checkpoint", str(run), "--input", str(unpaired_sets["src"]),
                 "--output", str(down), "--device", "cpu"]) == 0
    assert main(["-q", "psnr", "--pred", str(down), "--target", str(unpaired_sets["lr"]), "--shave", "8",
                 "--csv", str(table)]) == 0
    with open(table, newline="") as f:
        mean = float(list(csv.reader(f))[-1][1])
    assert float(last["val_lr_psnr"]) == pytest.approx(mean, abs=1e-3)
    assert main(["-q", "retrieve-kernel", "--hr", str(unpaired_sets["src"]), "--checkpoint", str(run),
                 "--size", "8", "--images", "1", "--output", str(kernel), "--device", "cpu"]) == 0
    truth = synthetic_kernel("k3", 2)
    assert float(last["val_kernel_similarity"]) == pytest.approx(kernel_similarity(np.load(kernel), truth), abs=1e-4)
    refresh = next(r for r in log_rows(run) if r["adl_kernel_similarity"])
    assert refresh["iteration"] == "3"  # the kernel retrieved after iteration 2
    assert float(refresh["adl_kernel_similarity"]) == pytest.approx(
        kernel_similarity(np.load(run / "kernel_2.npy"), truth), abs=1e-4)


def test_validation_options_are_checked_before_training(unpaired_sets, tmp_path, capsys):
    base = train_args(unpaired_sets, tmp_path / "run", 2)[1:]
    assert_one_error(capsys, [*base, "--val-hr", unpaired_sets["src"]], "--val-hr", "--val-lr", code=2)
    assert_one_error(capsys, [*base, "--true-kernel", "k3"], "--true-kernel", code=2)
    assert_one_error(capsys, [*base, "--val-hr", unpaired_sets["src"], "--val-lr", unpaired_sets["hr"]],
                     "--val-hr")  # astronaut/coffee do not pair with chelsea/rocket
    # 96-px val images cannot determine a 40x40 kernel: said before training, not after it.
    bicubic = train_args(unpaired_sets, tmp_path / "run", 2, loss="bicubic")[1:]
    assert_one_error(capsys, [*bicubic, *validation_args(unpaired_sets), "--kernel-size", "40"], "--val-hr",
                     "--kernel-size")
    assert not (tmp_path / "run").exists()
