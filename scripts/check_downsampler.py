#!/usr/bin/env python
"""Train the downsampler under ADL, LFL and the bicubic data term, then print a Table 1 style row.

For each data term: LR PSNR of G(test HR) against the true test LR (shave 8 LR pixels,
method.md §1) and the similarity between the kernel retrieved from the final G and the true
kernel. Without --hr/--lr/--test-hr/--test-lr it builds the scikit-image protocol
(adl.data.sample_data) degraded with --kernel.

  python scripts/check_downsampler.py --kernel k3 --iterations 2000 --device cuda
  python scripts/check_downsampler.py --hr H --lr L --test-hr TH --test-lr TL --true-kernel k.npy

Every option after `--` goes to `adl train-downsampler` unchanged (e.g. -- --width 32).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from adl.cli import main as adl
from adl.kernels import resolve_kernel
from adl.metrics import kernel_similarity

TERMS = ("adl", "lfl", "bicubic")


def run(argv: list[str]) -> None:
    print("$ adl " + " ".join(argv), flush=True)
    code = adl(argv)
    if code != 0:
        sys.exit(code)


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="check-downsampler", help="working folder (runs are resumed)")
    p.add_argument("--kernel", default="k3", help="true kernel for the built-in protocol: k0..k4 or .npy")
    p.add_argument("--true-kernel", help="true kernel of a given --lr/--test-lr set (.npy or k0..k4)")
    p.add_argument("--hr"), p.add_argument("--lr"), p.add_argument("--test-hr"), p.add_argument("--test-lr")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--terms", default=",".join(TERMS), help="comma-separated data terms")
    p.add_argument("--device", default="auto")
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    work = Path(args.work)

    if args.hr:
        folders = {"hr": args.hr, "lr": args.lr, "test_hr": args.test_hr, "test_lr": args.test_lr}
        true_kernel = resolve_kernel(args.true_kernel, args.scale) if args.true_kernel else None
    else:
        from adl.data.sample_data import write_sample_protocol

        true_kernel = resolve_kernel(args.kernel, args.scale)
        folders = write_sample_protocol(work / "data", true_kernel, args.scale)

    rows = []
    for term in args.terms.split(","):
        run_dir = work / f"run-{term}"
        started = time.perf_counter()
        run(["-q", "train-downsampler", "--hr", str(folders["hr"]), "--lr", str(folders["lr"]),
             "--scale", str(args.scale), "--data-loss", term, "--output", str(run_dir),
             "--iterations", str(args.iterations), "--device", args.device, *extra])
        seconds = time.perf_counter() - started
        down = work / f"down-{term}"
        run(["-q", "downsample", "--checkpoint", str(run_dir), "--input", str(folders["test_hr"]),
             "--output", str(down), "--device", args.device])
        table = work / f"psnr-{term}.csv"
        run(["-q", "psnr", "--pred", str(down), "--target", str(folders["test_lr"]), "--shave", "8",
             "--csv", str(table)])
        with open(table) as f:
            psnr = float([r for r in csv.reader(f)][-1][1])
        kernel_path = work / f"kernel-{term}.npy"
        run(["-q", "retrieve-kernel", "--hr", str(folders["test_hr"]), "--checkpoint", str(run_dir),
             "--scale", str(args.scale), "--output", str(kernel_path), "--device", args.device])
        similarity = kernel_similarity(np.load(kernel_path), true_kernel) if true_kernel is not None else float("nan")
        rows.append((term, psnr, similarity, seconds))

    print("\n| data term | LR PSNR (dB) | kernel similarity | train seconds |\n|---|---|---|---|")
    for term, psnr, similarity, seconds in rows:
        print(f"| {term} | {psnr:.2f} | {similarity:.4f} | {seconds:.0f} |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["data_term", "lr_psnr", "kernel_similarity", "train_seconds"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
