#!/usr/bin/env python
"""Throughput and peak memory of `adl generate`: ONNX Runtime, the torch backend, its fast path.

Makes COUNT HR images of SIZE from the scikit-image photos (crops, flips and tiles; nothing is
downloaded), exports a paper-size downsampler (width 64, random weights: speed does not depend
on the weights) and runs the real `adl generate` command for each variant and count, end to
end: decode, inference, patch cutting and HDF5 writing. Peak RSS is the generate process's own
(os.wait4), so it shows whether memory grows with the number of images.

A variant is backend[:precision[:compile]]: `torch:fp32` is the exact path, `torch` alone the
defaults (on CUDA: fp16 autocast, channels_last, torch.compile), `torch:fp16:off` the fast path
without compilation. For each torch variant the share of its LR pixels within one 8-bit level of
`torch:fp32`'s is printed (the goal is ≥ 99.9 %).

  python benchmarks/generate.py                                   # 20 and 200 images of 480x480, CPU
  python benchmarks/generate.py --quick                           # seconds; run in CI so it cannot rot
  python benchmarks/generate.py --device cuda                     # 100 DIV2K-size images, GPU
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from child_run import run_generate


def make_images(folder: Path, count: int, height: int, width: int) -> None:
    from adl.data.sample_data import sample_photos
    from adl.imageio import write_png

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


def make_model(folder: Path, width: int, onnx: bool) -> tuple[Path, Path | None]:
    """A downsampler run folder (checkpoint) and, if ``onnx``, its ONNX export."""
    from adl.downsampler.apply import CHECKPOINT_KIND
    from adl.downsampler.export import export_onnx
    from adl.nets import Downsampler

    torch.manual_seed(0)
    run = folder / "run"
    run.mkdir(parents=True)
    config = {"width": width, "scale": 2}
    torch.save({"kind": CHECKPOINT_KIND, "config": config, "G": Downsampler(width).state_dict()}, run / "checkpoint.pt")
    if not onnx:
        return run, None
    onnx_path = folder / "model.onnx"
    export_onnx(run, onnx_path)
    return run, onnx_path


def lr_pixels(folder: Path) -> np.ndarray:
    import h5py

    parts = []
    for shard in sorted(folder.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            parts.append(f["lr"][()])
    return np.concatenate(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    p.add_argument("--counts", help="image counts (default 20,200 on CPU, 100 on CUDA)")
    p.add_argument("--size", help="HxW of the HR images (default 480x480 on CPU, DIV2K's 1356x2040 on CUDA)")
    p.add_argument("--variants", help="backend[:precision[:compile]] list (default onnxruntime,torch on CPU; "
                                      "torch:fp32,torch:fp16:off,torch on CUDA)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=64, help="G width (64 is the paper's)")
    p.add_argument("--workers", type=int, help="decoding threads (default 2 on CPU, 12 on CUDA)")
    p.add_argument("--writers", type=int, default=None, help="shard-writing processes (default: adl's)")
    p.add_argument("--patch", type=int, help="HR patch (default 96 on CPU, 192 on CUDA, adl's default)")
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    args.counts = args.counts or ("100" if cuda else "20,200")
    args.size = args.size or ("1356x2040" if cuda else "480x480")
    args.variants = args.variants or ("torch:fp32,torch:fp16:off,torch" if cuda else "onnxruntime,torch")
    args.workers = args.workers or (12 if cuda else 2)
    args.patch = args.patch or (192 if cuda else 96)
    per_image = 16 if cuda else 8
    if args.quick:
        args.counts, args.size, args.width, args.patch = "2,4", "96x96", 8, 32
        args.variants = "onnxruntime,torch:fp32,torch:bf16"
    height, width = (int(v) for v in args.size.lower().split("x"))
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        work = Path(work)
        run, onnx_path = make_model(work, args.width, onnx="onnxruntime" in args.variants)
        make_images(work / "hr", max(counts), height, width)
        card = torch.cuda.get_device_name() if cuda else "CPU"
        print(f"torch {torch.__version__}, {card}, {os.cpu_count()} CPUs, device {args.device}, G width {args.width}, "
              f"HR {width}x{height}, patch {args.patch}, {per_image} patches per image\n")
        print("| variant | images | seconds | images/s | peak RSS (MiB) |\n|---|---|---|---|---|")
        outputs = {}
        for count in counts:
            subset = work / f"hr{count}"
            subset.mkdir()
            for path in sorted((work / "hr").iterdir())[:count]:
                os.link(path, subset / path.name)
            for variant in args.variants.split(","):
                backend, precision, compile = (variant.split(":") + ["", ""])[:3]
                model = onnx_path if backend == "onnxruntime" else run
                out = work / f"out-{variant.replace(':', '-')}-{count}"
                extra = ["--precision", precision] if precision else []
                extra += ["--compile", compile] if compile else []
                extra += ["--writers", str(args.writers)] if args.writers is not None else []
                seconds, rss = run_generate([
                    "--model", str(model), "--hr", str(subset), "--output", str(out), "--backend", backend,
                    "--device", args.device, "--patch", str(args.patch), "--patches-per-image", str(per_image),
                    "--shard-size", "64", "--workers", str(args.workers), *extra])
                outputs[variant] = out
                print(f"| {variant} | {count} | {seconds:.1f} | {count / seconds:.2f} | {rss:.0f} |", flush=True)
        exact = outputs.get("torch:fp32")
        for variant, out in outputs.items():
            if exact is not None and variant.startswith("torch") and variant != "torch:fp32":
                diff = np.abs(lr_pixels(exact).astype(int) - lr_pixels(out).astype(int))
                print(f"\n{variant} against torch:fp32 (largest count): {np.mean(diff <= 1):.4%} of LR pixels within "
                      f"one level, {np.mean(diff == 0):.2%} equal, largest difference {diff.max()}")


if __name__ == "__main__":
    main()
