#!/usr/bin/env python
"""The quick-start demo: stage 1 of the method on scikit-image photos, in a few CPU minutes.

It runs the real CLI commands, printing each one, so it doubles as a worked example:
  1. build an unpaired protocol whose LR set is degraded with the anisotropic kernel k3;
  2. learn a downsampler G with ADL (LFL warm-up, then kernels retrieved from G);
  3. retrieve G's kernel on held-out HR images and compare it with k3;
  4. apply G to the held-out HR images and score them against their true LR.
The networks are narrowed (--width 32) and the schedule shortened so that it fits a laptop;
the paper-size defaults need a GPU. Rerunning resumes and skips finished work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from adl.cli import main as adl
from adl.kernels import synthetic_kernel
from adl.metrics import kernel_similarity


def run(*argv: str) -> None:
    print("\n$ adl " + " ".join(argv), flush=True)
    code = adl(list(argv))
    if code != 0:
        sys.exit(code)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="demo", help="working folder (default ./demo)")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    out = Path(args.output)
    data, run_dir = out / "data", out / "run-adl"

    run("sample-data", "--output", str(data), "--scale", "2", "--kernel", "k3")
    run("kernels", "--scale", "2", "--output", str(out / "kernels"))
    run("train-downsampler", "--hr", str(data / "hr"), "--lr", str(data / "lr"), "--data-loss", "adl",
        "--output", str(run_dir), "--iterations", str(args.iterations), "--width", "32", "--disc-width", "32",
        "--batch-size", "8", "--warmup", str(args.iterations // 3), "--update-every", str(args.iterations // 3),
        "--lr-rate", "2e-4", "--retrieval-images", "3", "--checkpoint-every", "50", "--log-every", "25",
        "--device", args.device)
    run("retrieve-kernel", "--hr", str(data / "test_hr"), "--checkpoint", str(run_dir), "--scale", "2",
        "--output", str(out / "kernel-G.npy"), "--device", args.device)
    run("retrieve-kernel", "--hr", str(data / "test_hr"), "--lr", str(data / "test_lr"), "--scale", "2",
        "--output", str(out / "kernel-pairs.npy"), "--device", args.device)
    run("downsample", "--checkpoint", str(run_dir), "--input", str(data / "test_hr"),
        "--output", str(out / "G-test"), "--device", args.device)
    run("degrade", "--input", str(data / "test_hr"), "--output", str(out / "bicubic-test"), "--scale", "2",
        "--kernel", "k0", "--device", args.device)
    print("\nLR PSNR against the true (k3) test LR, shave 8:")
    run("psnr", "--pred", str(out / "G-test"), "--target", str(data / "test_lr"), "--shave", "8",
        "--csv", str(out / "psnr-G.csv"))
    run("psnr", "--pred", str(out / "bicubic-test"), "--target", str(data / "test_lr"), "--shave", "8",
        "--csv", str(out / "psnr-bicubic.csv"))

    k3 = synthetic_kernel("k3", 2)
    print("\nkernel similarity to k3:")
    for name in ("kernel-pairs", "kernel-G"):
        print(f"  {name}: {kernel_similarity(np.load(out / f'{name}.npy'), k3):.4f}")
    print(f"\nresults are in {out}/ (log.csv and kernel pictures in {run_dir}/)")


if __name__ == "__main__":
    main()
