#!/usr/bin/env python
"""Time per training step of Algorithm 1, one speed lever at a time, then the fast path's fidelity.

Part 1 builds the real trainer (adl.downsampler.train.DownsamplerTrainer, ADL data term in its steady
state) at the paper config: batch 24, HR patches 128, LR patches 64, G width 64, D width 64. It
adds the levers one by one (docs/performance.md), timing each variant in this one process on the
same data, and prints the time per step, the speed-up over the eager TF32 baseline (PyTorch's
default) and the peak GPU memory. It also counts the FLOPs of one step (torch's FlopCounterMode),
from which the floor follows, and profiles the fastest variant: its top kernels and their share
of GPU time.

Part 2 (--fidelity N) trains N iterations of the scikit-image k3 protocol twice through
scripts/check_downsampler.py, with --precision fp32 and with the defaults, and compares the
Table 1 figures: LR PSNR and the similarity of the retrieved kernel to k3.

  python benchmarks/train_downsampler.py --device cuda          # about 6 minutes on an H100
  python benchmarks/train_downsampler.py --quick                # tiny, CPU, for CI
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from adl.data.sample_data import sample_photos
from adl.downsampler.options import DownsamplerOptions
from adl.downsampler.train import DownsamplerTrainer
from adl.fastpath import FastPath
from adl.imageio import write_png

ROOT = Path(__file__).resolve().parent.parent
# (name, precision, channels_last, compile mode, fused Adam, sampling, TF32)
LEVERS = [
    ("fp32, TF32 off (--precision fp32)", "fp32", False, None, False, "host", False),
    ("fp32, TF32 on (PyTorch default)", "fp32", False, None, False, "host", True),
    ("bf16 autocast", "bf16", False, None, False, "host", False),
    ("+ channels_last", "bf16", True, None, False, "host", False),
    ("+ fused Adam", "bf16", True, None, True, "host", False),
    ("+ patches cut on the GPU", "bf16", True, None, True, "device", False),
    ("+ torch.compile (the CUDA default)", "bf16", True, "default", True, "device", False),
    ("+ CUDA graphs (--compile cudagraphs)", "bf16", True, "reduce-overhead", True, "device", False),
]
BASELINE = 1  # the eager TF32 step the issue measures against
CPU_LEVERS = [  # what runs on a CPU: the exact path, CPU autocast, and the resident sampler's path
    LEVERS[0],
    ("bf16 autocast (CPU)", "bf16", False, None, False, "host", False),
    ("fp32, patches cut by gather", "fp32", False, None, False, "device", False),
]
# Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s.
PEAK_BF16 = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4}


def make_images(folder: Path, count: int, size: int, scale: int = 1) -> None:
    """Crops of the bundled photos (nothing downloaded); LR ones are box-downscaled by ``scale``."""
    photos = list(sample_photos().values())
    for i in range(count):
        photo = photos[i % len(photos)]
        y, x = (i * 37) % (photo.shape[0] - size + 1), (i * 53) % (photo.shape[1] - size + 1)
        crop = photo[y : y + size, x : x + size].astype(np.float64)
        if scale > 1:
            crop = crop.reshape(size // scale, scale, size // scale, scale, 3).mean((1, 3))
        write_png(folder / f"{i:03d}.png", np.round(crop).astype(np.uint8))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def build(options: DownsamplerOptions, lever: tuple, run_dir: Path, device: torch.device) -> DownsamplerTrainer:
    _, precision, channels_last, mode, fused, sampling, _ = lever
    fast = FastPath(device=device, precision=precision, channels_last=channels_last, compile_mode=mode,
                    fused_adam=fused)
    return DownsamplerTrainer(dataclasses.replace(options, sampling=sampling), run_dir, fast=fast)


def time_lever(options, lever, work: Path, device, warmup: int, steps: int):
    """Seconds per step after ``warmup`` steps (compilation happens there), peak memory in GiB,
    and the trainer, warm, for profiling."""
    trainer = build(options, lever, work / "run", device)
    set_tf32(lever[-1])  # after the trainer, whose set-up turns TF32 off
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = iter(trainer.batches())
    trainer.before_step()  # the ADL kernel, retrieved once before the first step
    for _ in range(warmup):
        trainer.train_step(next(batches))
        trainer.iteration += 1
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
        trainer.iteration += 1
    sync(device)
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return seconds, peak, (trainer, batches)


def step_flops(options, work: Path, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    trainer = build(options, LEVERS[0], work / "flops", device)
    batch = next(iter(trainer.batches()))
    trainer.before_step()
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(batch)
    return counter.get_total_flops()


def top_kernels(warm, device, steps: int = 10, top: int = 12) -> list[tuple[str, float]]:
    """The ``top`` kernels of ``steps`` steps of a warm (compiled, if it compiles) trainer, with their share."""
    from torch.profiler import ProfilerActivity, profile

    trainer, batches = warm
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(next(batches))
        sync(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attribute) > 0]
    total = sum(getattr(e, attribute) for e in events)
    events.sort(key=lambda e: getattr(e, attribute), reverse=True)
    return [(e.key, getattr(e, attribute) / total) for e in events[:top]]


def fidelity(iterations: int, device: str, work: Path, extra: list[str]) -> list[tuple[str, float, float]]:
    rows = []
    for name, precision in (("fp32", "fp32"), ("fast (defaults)", "auto")):
        table = work / f"fidelity-{precision}.csv"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "check_downsampler.py"), "--kernel", "k3",
                        "--terms", "adl", "--iterations", str(iterations), "--device", device,
                        "--work", str(work / f"fidelity-{precision}"), "--csv", str(table), "--",
                        "--precision", precision, *extra], check=True, stdout=subprocess.DEVNULL)
        with open(table) as f:
            row = next(csv.DictReader(f))
        rows.append((name, float(row["lr_psnr"]), float(row["kernel_similarity"])))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=15, help="untimed steps first (compilation happens here)")
    p.add_argument("--fidelity", type=int, default=1000, help="iterations of the fidelity runs (0: skip)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    size = dict(batch_size=24, lr_patch=64, width=64, disc_width=64)
    third = max(1, args.fidelity // 3)  # ADL retrievals at 1/3 and 2/3 of the run: its data term really acts
    fidelity_extra = ["--warmup", str(third), "--update-every", str(third)]
    levers = LEVERS if device.type == "cuda" else CPU_LEVERS
    if args.quick:
        device, args.steps, args.warmup, args.fidelity = torch.device("cpu"), 2, 1, 4
        size = dict(batch_size=2, lr_patch=32, width=4, disc_width=4)
        fidelity_extra = ["--width", "4", "--disc-width", "4", "--batch-size", "2", "--lr-patch", "32", "--warmup",
                          "2", "--update-every", "2", "--retrieval-images", "2", "--kernel-size", "8"]
        levers = CPU_LEVERS
    with tempfile.TemporaryDirectory(prefix="adl-bench-") as work:
        work = Path(work)
        hr_size = 2 * size["lr_patch"] * 2
        make_images(work / "hr", 8, hr_size)
        make_images(work / "lr", 8, hr_size, scale=2)
        options = DownsamplerOptions(hr=str(work / "hr"), lr=str(work / "lr"), data_loss="adl", warmup=0,
                                     update_every=10**9, retrieval_images=4, iterations=10**6, device=str(device),
                                     workers=4 if device.type == "cuda" else 0, **size)
        card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"torch {torch.__version__}, {card}, batch {size['batch_size']}, LR patch {size['lr_patch']}, "
              f"widths {size['width']}/{size['disc_width']}, {args.steps} timed steps after {args.warmup}\n")
        flops = step_flops(options, work, device)
        peak = next((v for k, v in PEAK_BF16.items() if k in card), None)
        floor = f", floor {flops / (peak * 1e12) * 1e3:.2f} ms at the {peak:.0f} TFLOP/s bf16 peak" if peak else ""
        print(f"one step: {flops / 1e12:.3f} TFLOP{floor}\n")

        print("| variant | ms per step | it/s | speed-up over TF32 eager | peak GPU GiB |\n|---|---|---|---|---|")
        results, best = [], None
        for k, lever in enumerate(levers):
            try:
                seconds, memory, warm = time_lever(options, lever, work / f"v{k}", device, args.warmup, args.steps)
            except Exception as exc:  # a lever that fails here is a result to report, not the end of the run
                print(f"| {lever[0]} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]} | - | - | - |")
                continue
            results.append((lever, seconds))
            if best is None or seconds < best[1]:
                best = (lever, seconds, warm)  # only the fastest stays warm (its loader workers live on)
            del warm
            base = next((s for lv, s in results if lv is LEVERS[BASELINE]), None)
            speedup = f"{base / seconds:.2f}×" if base else "-"
            memory = "-" if memory != memory else f"{memory:.2f}"  # NaN: no GPU
            print(f"| {lever[0]} | {seconds * 1e3:.1f} | {1 / seconds:.2f} | {speedup} | {memory} |", flush=True)
        if best is not None:
            fastest, _, warm = best
            print(f"\nTop kernels of '{fastest[0]}':\n\n| kernel | share of time |\n|---|---|")
            for name, share in top_kernels(warm, device):
                print(f"| {name[:90]} | {share:.1%} |")
        if args.fidelity:
            print(f"\nFidelity after {args.fidelity} iterations (k3 protocol, ADL):\n\n"
                  "| path | LR PSNR (dB) | kernel similarity to k3 |\n|---|---|---|")
            rows = fidelity(args.fidelity, str(device), work, fidelity_extra)
            for name, psnr, similarity in rows:
                print(f"| {name} | {psnr:.2f} | {similarity:.4f} |")
            (_, p0, s0), (_, p1, s1) = rows
            print(f"\nΔ LR PSNR {p1 - p0:+.3f} dB (goal within ±0.2), Δ similarity {s1 - s0:+.4f} (goal within ±0.005)")


if __name__ == "__main__":
    main()
