"""Does Algorithm 1 learn at all? A downsampler trained adversarially against LR made with a true
kernel must move towards that kernel.

On photos, D needs thousands of iterations to see blur (docs/fidelity.md), far beyond CI's budget.
On white noise, blur is the only structure there is, so D sees it within tens of iterations, and
the diagnostic one-kernel G (--generator linear) must follow. Measured on the 2-core CPU machine
(seeds 0, 1, 2; lr 5e-4, D width 8 without normalisation, 100 iterations): similarity to k3 went from 0.721 (the 2×2
box it starts as) to 0.800, 0.769 and 0.781. The test asks for +0.03, under half the smallest gain;
a sign error in a GAN loss, a D that is not updated, or a G that gets no adversarial gradient stays
at 0.72 or falls.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from adl.cli import main
from adl.degradation import degrade
from adl.imageio import write_png
from adl.kernels import synthetic_kernel
from adl.metrics import kernel_similarity
from adl.nets.linear import LinearDownsampler

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def noise_protocol(tmp_path_factory):
    """Four white-noise HR images; four others degraded with k3 as the unpaired LR; one test pair."""
    root = tmp_path_factory.mktemp("noise")
    kernel, rng = synthetic_kernel("k3", 2), np.random.default_rng(0)
    noise = lambda size: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # noqa: E731
    for i in range(4):
        write_png(root / "hr" / f"n{i}.png", noise(64))
        write_png(root / "lr" / f"n{i}.png", degrade(noise(64), kernel, 2))
    test = noise(96)
    write_png(root / "test_hr" / "t.png", test)
    write_png(root / "test_lr" / "t.png", degrade(test, kernel, 2))
    return root


def test_linear_g_moves_towards_the_true_kernel(noise_protocol, tmp_path):
    start = kernel_similarity(LinearDownsampler().kernel.detach().numpy(), synthetic_kernel("k3", 2))
    run = tmp_path / "run"
    assert main(["-q", "train-downsampler", "--hr", str(noise_protocol / "hr"), "--lr", str(noise_protocol / "lr"),
                 "--output", str(run), "--generator", "linear", "--data-loss", "lfl", "--iterations", "100",
                 "--batch-size", "8", "--lr-patch", "32", "--disc-width", "8", "--disc-norm", "none",
                 "--lr-rate", "5e-4",
                 "--epoch-length", "1000", "--log-every", "20", "--val-hr", str(noise_protocol / "test_hr"),
                 "--val-lr", str(noise_protocol / "test_lr"), "--true-kernel", "k3", "--device", "cpu"]) == 0
    with open(run / "log.csv", newline="") as f:
        similarity = [float(r["val_kernel_similarity"]) for r in csv.DictReader(f)]
    assert start == pytest.approx(0.721, abs=1e-3)  # the centred 2×2 box against k3
    assert similarity[-1] > start + 0.03, similarity
