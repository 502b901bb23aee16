#!/usr/bin/env python
"""Iterations per second of `adl train-sr`, with and without --amp, for EDSR ×2 and RRDB ×4.

Runs the real command on the scikit-image protocol (kernel:k2 "Oracle" source) and reads the
steady-state rate from log.csv (the first logged interval, which holds start-up and warm-up,
is left out).

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


def rate(run: Path) -> float:
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    (a, b) = rows[0], rows[-1]
    return (int(b["iteration"]) - int(a["iteration"])) / (float(b["seconds"]) - float(a["seconds"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    configs = [("edsr", 2, []), ("rrdb", 4, [])]
    size = ["--batch-size", "16", "--hr-patch", "192"]
    if args.quick:
        args.device, args.iterations = "cpu", 6
        size = ["--batch-size", "2", "--hr-patch", "32", "--n-feats", "8", "--n-blocks", "1"]
    amps = [False, True] if args.device.startswith("cuda") else [False]
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        data = Path(work) / "data"
        subprocess.run([sys.executable, "-m", "adl", "-q", "sample-data", "--output", str(data), "--kernel", "k2"],
                       check=True)
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        print(f"torch {torch.__version__}, {name}\n\n| model | scale | amp | it/s |\n|---|---|---|---|")
        for model, scale, extra in configs:
            for amp in amps:
                run = Path(work) / f"{model}-{scale}-{amp}"
                log_every = max(1, args.iterations // 6)
                cmd = [sys.executable, "-m", "adl", "-q", "train-sr", "--hr", str(data / "hr"),
                       "--lr-source", "kernel:k2", "--model", model, "--scale", str(scale), "--output", str(run),
                       "--iterations", str(args.iterations), "--log-every", str(log_every),
                       "--checkpoint-every", str(args.iterations), "--device", args.device, *size, *extra]
                subprocess.run(cmd + (["--amp"] if amp else []), check=True, stdout=subprocess.DEVNULL)
                print(f"| {model} | ×{scale} | {'bf16' if amp else 'fp32'} | {rate(run):.2f} |", flush=True)


if __name__ == "__main__":
    main()
