"""Issue 12 §4–5 for training run folders: ADL retrieval checked at start-up, --kernel-size and
--retrieval-images free until the first retrieval, and a folder of the other trainer named as such."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_one_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--batch-size", "2", "--lr-patch", "32", "--width", "4", "--disc-width", "4", "--update-every", "3",
        "--log-every", "1", "--checkpoint-every", "1", "--device", "cpu"]


def adl_args(sets, out, iterations, kernel_size, *extra):
    return ["train-downsampler", "--hr", sets["hr"], "--lr", sets["lr"], "--data-loss", "adl", "--output", out,
            "--iterations", str(iterations), "--warmup", "2", "--kernel-size", str(kernel_size), *TINY, *extra]


def test_retrieval_that_cannot_be_determined_fails_before_the_warmup(unpaired_sets, tmp_path, capsys):
    """One 128² image gives 34² = 1156 equations for a 60×60 kernel's 3600 unknowns. Before issue 12 the
    run trained through the LFL warm-up first and failed at the retrieval."""
    out = tmp_path / "run"
    line = assert_one_error(capsys, adl_args(unpaired_sets, out, 3, 60, "--retrieval-images", "1"),
                            "--kernel-size 60", "1156", "3600")
    assert "--retrieval-images" in line
    assert not out.exists()  # nothing trained, nothing pinned


def test_kernel_options_may_change_until_a_kernel_is_retrieved(unpaired_sets, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, adl_args(unpaired_sets, out, 1, 8))[0] == 0  # warm-up only: no kernel yet
    code, _, err = run_cli(capsys, adl_args(unpaired_sets, out, 3, 10, "--retrieval-images", "1"))
    assert code == 0, err
    options = json.loads((out / "config.json").read_text())["options"]
    assert options["kernel_size"] == 10 and options["retrieval_images"] == 1
    assert np.load(out / "kernel.npy").shape == (10, 10)  # retrieved at iteration 2 with the new size
    line = assert_one_error(capsys, adl_args(unpaired_sets, out, 4, 8, "--retrieval-images", "1"), "--kernel-size")
    assert "--retrieval-images" not in line


def test_a_run_folder_of_the_other_trainer(unpaired_sets, tmp_path, capsys):
    down = tmp_path / "down"
    assert run_cli(capsys, adl_args(unpaired_sets, down, 1, 8))[0] == 0
    line = assert_one_error(capsys, ["train-sr", "--hr", unpaired_sets["hr"], "--lr-source", "bicubic",
                                     "--output", down, "--iterations", "1", "--n-feats", "8", "--n-blocks", "1",
                                     "--hr-patch", "32", "--batch-size", "2", "--device", "cpu"],
                            down, "a train-downsampler run folder, not a train-sr one")
    assert "--lr-rate" not in line  # not a list of option differences
    sr = tmp_path / "sr"  # an SR folder from before config.json recorded its kind: told by its options
    sr.mkdir()
    (sr / "config.json").write_text(json.dumps({"options": {"lr_source": "bicubic", "model": "edsr"}}))
    assert_one_error(capsys, adl_args(unpaired_sets, sr, 1, 8), sr, "a train-sr run folder, not a train-downsampler one")
