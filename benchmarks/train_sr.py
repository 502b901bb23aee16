#!/usr/bin/env python
"""Iterations per second of `adl train-sr`, exact fp32 against the fast path, and PSNR after both.

Runs the real command on the scikit-image protocol (kernel:k2 "Oracle" source) for each model
and path, and reads the steady-state rate from log.csv (the first logged interval, which holds
start-up, warm-up and compilation, is left out). Each run ends with a validation on the
protocol's test pair, so the fast path's PSNR after the same short schedule is printed beside
the exact path's. On CUDA the paths are `--precision fp32` (eager, TF32 off), `--precision bf16
--compile off` and the defaults (bf16, channels_last, fused Adam, torch.compile).

  python benchmarks/train_sr.py --device cuda             # batch 16, patch 192, as in the paper
  python benchmarks/train_sr.py --quick                   # tiny, CPU, for CI
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def rate(rows: list[dict]) -> float:
    (a, b) = rows[0], rows[-1]
    return (int(b["iteration"]) - int(a["iteration"])) / (float(b["seconds"]) - float(a["seconds"]))


def test_lr(data: Path, scale: str) -> Path:
    """The protocol's test HR degraded by k2 at ``scale``: what the kernel:k2 source trains towards."""
    folder = data / f"test_lr_x{scale}"
    if not folder.exists():
        subprocess.run([sys.executable, "-m", "adl", "-q", "degrade", "--input", str(data / "test_hr"), "--output",
                        str(folder), "--scale", scale, "--kernel", "k2"], check=True, stdout=subprocess.DEVNULL)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--models", default="edsr:2,rrdb:4", help="model:scale list")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    size = ["--batch-size", "16", "--hr-patch", "192"]
    paths = [("fp32", ["--precision", "fp32"])]
    if args.device.startswith("cuda"):
        paths += [("bf16, eager", ["--precision", "bf16", "--compile", "off"]), ("defaults", [])]
    if args.quick:
        args.device, args.iterations, args.models = "cpu", 6, "edsr:2"
        size = ["--batch-size", "2", "--hr-patch", "32", "--n-feats", "8", "--n-blocks", "1"]
        paths = [("fp32", ["--precision", "fp32"]), ("bf16", ["--precision", "bf16"])]
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        data = Path(work) / "data"
        subprocess.run([sys.executable, "-m", "adl", "-q", "sample-data", "--output", str(data), "--kernel", "k2"],
                       check=True)
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        print(f"torch {torch.__version__}, {name}, {args.iterations} iterations\n\n"
              "| model | scale | path | it/s | speed-up | PSNR after the run (dB) |\n|---|---|---|---|---|---|")
        for spec in args.models.split(","):
            model, scale = spec.split(":")
            base = None
            for label, flags in paths:
                run = Path(work) / f"{model}-{scale}-{label.replace(' ', '').replace(',', '-')}"
                log_every = max(1, args.iterations // 6)
                cmd = [sys.executable, "-m", "adl", "-q", "train-sr", "--hr", str(data / "hr"),
                       "--lr-source", "kernel:k2", "--model", model, "--scale", scale, "--output", str(run),
                       "--iterations", str(args.iterations), "--log-every", str(log_every),
                       "--checkpoint-every", str(args.iterations), "--device", args.device,
                       "--val-hr", str(data / "test_hr"), "--val-lr", str(test_lr(data, scale)),
                       "--val-every", str(args.iterations), *size, *flags]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                rows = log_rows(run)
                it_s = rate(rows)
                base = base or it_s
                psnr = rows[-1].get("val_psnr") or "-"
                print(f"| {model} | ×{scale} | {label} | {it_s:.2f} | {it_s / base:.2f}× | {psnr} |", flush=True)


if __name__ == "__main__":
    main()
