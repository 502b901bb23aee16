#!/usr/bin/env python
"""Peak RSS and images/s of `adl generate --format png --full-images` against photo size (issue 20).

For each HR size and backend, makes COUNT photos of that size from scikit-image's (tiled, nothing
downloaded), and runs the real command on a paper-size G (width 64, random weights: memory and
speed do not depend on them). Peak RSS is the generate process's own (os.wait4); PNG output has
no writer processes. The last column is adl's own estimate (adl.downsampler.memory), which
--max-memory compares with the budget; it is calibrated for width 64.

  python benchmarks/generate_memory.py                      # 680x1020 and 1356x2040, both backends (minutes)
  python benchmarks/generate_memory.py --sizes 2160x4096    # 4K: ~17 GB with ONNX Runtime, ~12 GB with torch
  python benchmarks/generate_memory.py --quick              # seconds; run in CI so it cannot rot
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from child_run import run_generate



def setup(work: Path, width: int, onnx: bool, sizes: list[tuple[int, int]], count: int) -> None:
    """Model and photos, in a child process: a child's peak RSS starts at its parent's (Linux keeps the
    high-water mark across fork and exec), so the parent must stay small, without torch."""
    from generate import make_images, make_model

    make_model(work, width, onnx)
    for height, width_ in sizes:
        make_images(work / f"hr-{height}x{width_}", count, height, width_)


def main() -> None:
    from adl.downsampler.memory import MIB, estimate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and G, for CI")
    p.add_argument("--sizes", default="680x1020,1356x2040", help="HxW list")
    p.add_argument("--count", type=int, default=4, help="photos per size")
    p.add_argument("--backends", default="onnxruntime,torch")
    p.add_argument("--width", type=int, default=64, help="G width (64 is the paper's)")
    p.add_argument("--max-memory", help="passed to adl generate (default: adl's)")
    p.add_argument("--setup", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.setup:
        height_width = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
        return setup(Path(args.setup), args.width, "onnxruntime" in args.backends, height_width, args.count)
    if args.quick:
        args.sizes, args.count, args.width = "64x96,128x192", 2, 8
    extra = ["--max-memory", args.max_memory] if args.max_memory else []
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        work = Path(work)
        subprocess.run([sys.executable, __file__, "--setup", str(work), "--sizes", args.sizes, "--count",
                        str(args.count), "--width", str(args.width), "--backends", args.backends], check=True)
        ckpt, onnx_path = work / "run", work / "model.onnx"
        print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, G width "
              f"{args.width}, {args.count} photos per size, PNG in and out, whole images\n")
        print("| backend | HR size | images | seconds | images/s | peak RSS (MiB) | estimate (MiB) |\n"
              "|---|---|---|---|---|---|---|")
        for size in args.sizes.split(","):
            height, width = (int(v) for v in size.lower().split("x"))
            hr = work / f"hr-{height}x{width}"
            for backend in args.backends.split(","):
                model = onnx_path if backend == "onnxruntime" else ckpt
                seconds, rss = run_generate(["--model", str(model), "--hr", str(hr), "--output", str(work / f"out-{size}-{backend}"),
                                    "--backend", backend, "--device", "cpu", "--format", "png", "--full-images",
                                    *extra])
                guess = f"{estimate(backend, height * width) / MIB:.0f}" if args.width == 64 else "n/a (width ≠ 64)"
                print(f"| {backend} | {width}x{height} | {args.count} | {seconds:.1f} | {args.count / seconds:.3f} | "
                      f"{rss:.0f} | {guess} |", flush=True)


if __name__ == "__main__":
    main()
