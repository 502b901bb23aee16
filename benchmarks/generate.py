#!/usr/bin/env python
"""Throughput and peak memory of `adl generate`, ONNX Runtime against the torch backend.

Makes COUNT HR images of SIZE from the scikit-image photos (crops, flips and tiles; nothing is
downloaded), exports a paper-size downsampler (width 64, random weights: speed does not depend
on the weights) and runs the real `adl generate` command for each backend and count, end to
end: decode, inference, patch cutting and HDF5 writing. Peak RSS is the generate process's own
(os.wait4), so it shows whether memory grows with the number of images.

  python benchmarks/generate.py                          # 20 and 200 images of 480x480, CPU
  python benchmarks/generate.py --quick                  # seconds; run in CI so it cannot rot
  python benchmarks/generate.py --backends torch --device cuda --size 2040x1356 --counts 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_images(folder: Path, count: int, height: int, width: int) -> None:
    from adl.imageio import write_png
    from adl.sample_data import sample_photos

    photos = list(sample_photos().values())
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % len(photos)]
        reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
        canvas = np.tile(photo, reps)  # tile small photos up to the requested size
        y = rng.integers(canvas.shape[0] - height + 1)
        x = rng.integers(canvas.shape[1] - width + 1)
        image = canvas[y : y + height, x : x + width]
        image = image[:, ::-1] if i % 2 else image
        write_png(folder / f"{i:04d}.png", np.ascontiguousarray(image))


def make_model(folder: Path, width: int) -> tuple[Path, Path]:
    """A downsampler run folder (checkpoint) and its ONNX export."""
    from adl.downsampling import CHECKPOINT_KIND
    from adl.export import export_onnx
    from adl.nets import Downsampler

    torch.manual_seed(0)
    run = folder / "run"
    run.mkdir(parents=True)
    config = {"width": width, "scale": 2}
    torch.save({"kind": CHECKPOINT_KIND, "config": config, "G": Downsampler(width).state_dict()}, run / "checkpoint.pt")
    onnx_path = folder / "model.onnx"
    export_onnx(run, onnx_path)
    return run, onnx_path


def run_generate(args: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adl", "-q", "generate", *args])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"adl generate failed: {' '.join(args)}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    p.add_argument("--counts", default="20,200")
    p.add_argument("--size", default="480x480", help="HxW of the HR images")
    p.add_argument("--backends", default="onnxruntime,torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=64, help="G width (64 is the paper's)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if args.quick:
        args.counts, args.size, args.width = "2,4", "96x96", 8
    height, width = (int(v) for v in args.size.lower().split("x"))
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        work = Path(work)
        run, onnx_path = make_model(work, args.width)
        make_images(work / "hr", max(counts), height, width)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, device {args.device}, G width {args.width}, "
              f"HR {width}x{height}, patch 96, 8 patches per image\n")
        print("| backend | images | seconds | images/s | peak RSS (MiB) |\n|---|---|---|---|---|")
        for count in counts:
            subset = work / f"hr{count}"
            subset.mkdir()
            for path in sorted((work / "hr").iterdir())[:count]:
                os.link(path, subset / path.name)
            for backend in args.backends.split(","):
                model = onnx_path if backend == "onnxruntime" else run
                seconds, rss = run_generate([
                    "--model", str(model), "--hr", str(subset), "--output", str(work / f"out-{backend}-{count}"),
                    "--backend", backend, "--device", args.device, "--patch", "96" if not args.quick else "32",
                    "--patches-per-image", "8", "--shard-size", "64", "--workers", str(args.workers)])
                print(f"| {backend} | {count} | {seconds:.1f} | {count / seconds:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
