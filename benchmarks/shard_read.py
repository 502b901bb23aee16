#!/usr/bin/env python
"""Shard compression choices and PNG pair folders: write cost, size, and DataLoader read throughput.

The same HR/LR patch pairs (cut from scikit-image photos, LR by the k2 kernel) are written with
adl's own shard writer under each --compression of `adl generate`, and as the PNG pair folders of
`--format png`. Each is then read for one shuffled epoch through a torch DataLoader (batch 16) with
0, 2 and 4 worker processes: ShardDataset for shards, and for PNG the read-and-decode of a paired-
folder dataset (PIL, as BasicSR's PairedImageDataset does with OpenCV). Prints two tables.

  python benchmarks/shard_read.py              # 1,024 samples of 192² HR patches
  python benchmarks/shard_read.py --quick      # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shard_layout import patches  # noqa: E402

from adl.imageio import write_png  # noqa: E402
from adl.shards.dataset import ShardDataset  # noqa: E402
from adl.shards.format import (  # noqa: E402
    FORMAT_VERSION,
    compression_record,
    shard_name,
    write_manifest,
    write_shard,
)

SHARD_SIZE = 512
COMPRESSIONS = [("gzip", 1), ("gzip", 4), ("lzf", None), ("none", None)]
WORKERS = (0, 2, 4)


class PngPairs(Dataset):
    """(lr, hr) float32 CHW in [0, 1] from hr/ and lr/ folders of same-named PNGs."""

    def __init__(self, root: Path):
        self.root = root
        self.names = sorted(os.listdir(root / "hr"))

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        def load(side: str) -> torch.Tensor:
            with Image.open(self.root / side / self.names[index]) as img:
                array = np.asarray(img.convert("RGB"))
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div_(255)

        return load("lr"), load("hr")


def write_shards(folder: Path, hr: np.ndarray, lr: np.ndarray, compression: str, level: int | None) -> float:
    """Seconds to write (and hash, as adl generate's writer does) every shard."""
    started = time.perf_counter()
    entries = []
    for k, start in enumerate(range(0, len(hr), SHARD_SIZE)):
        rows = slice(start, start + SHARD_SIZE)
        n = len(hr[rows])
        entries.append(write_shard(folder / shard_name(k), hr[rows], lr[rows], ["photo"] * n,
                                   np.zeros((n, 2), np.int32), 2, "0" * 64, compression=compression,
                                   level=level))
    seconds = time.perf_counter() - started
    patch = hr.shape[1]
    write_manifest(folder, {"format_version": FORMAT_VERSION, "scale": 2, "model": {"path": "-", "sha256": "0" * 64},
                            "options": {"patch": patch, "format": "h5", "full_images": False},
                            "compression": compression_record(compression, level), "shards": entries,
                            "total_samples": len(hr)})
    return seconds


def write_pngs(folder: Path, hr: np.ndarray, lr: np.ndarray) -> float:
    started = time.perf_counter()
    for i in range(len(hr)):
        write_png(folder / "hr" / f"{i:06d}.png", hr[i])
        write_png(folder / "lr" / f"{i:06d}.png", lr[i])
    return time.perf_counter() - started


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".h5", ".png"))


def epoch_rate(dataset: Dataset, workers: int, repeats: int) -> float:
    """Samples per second over one shuffled epoch, worker start-up included (as a training epoch pays it);
    the best of ``repeats`` epochs, since other work on a shared machine only ever slows one down."""
    best = 0.0
    for _ in range(repeats):
        torch.manual_seed(0)
        loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers)
        started = time.perf_counter()
        count = sum(len(batch[0]) for batch in loader)
        best = max(best, count / (time.perf_counter() - started))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--patch", type=int, default=192)
    p.add_argument("--repeats", type=int, default=3, help="epochs per measurement; the fastest counts")
    args = p.parse_args()
    if args.quick:
        args.samples, args.patch, args.repeats = 32, 64, 1
    torch.set_num_threads(1)
    hr, lr = patches(args.samples, args.patch, 2)
    raw = hr.nbytes + lr.nbytes
    print(f"{args.samples} samples of {args.patch}² HR + {args.patch // 2}² LR ({raw / 2**20:.1f} MiB raw), "
          f"shards of {SHARD_SIZE}; {os.cpu_count()} CPUs\n")
    layouts = []
    with tempfile.TemporaryDirectory() as work:
        for compression, level in COMPRESSIONS:
            folder = Path(work) / f"{compression}{level or ''}"
            seconds = write_shards(folder, hr, lr, compression, level)
            label = f"{compression}-{level}" if level is not None else compression
            layouts.append((f"shards, {label}", folder, seconds, ShardDataset(folder)))
        folder = Path(work) / "png"
        layouts.append(("PNG pair folders", folder, write_pngs(folder, hr, lr), PngPairs(folder)))

        print("| layout | size (MiB) | ratio | write s | written MiB/s (raw) |")
        print("|---|---|---|---|---|")
        for label, folder, seconds, _ in layouts:
            size = size_of(folder)
            print(f"| {label} | {size / 2**20:.1f} | {raw / size:.2f} | {seconds:.2f} | {raw / 2**20 / seconds:.0f} |")
        print()
        print("| layout | " + " | ".join(f"{w} workers (samples/s)" for w in WORKERS) + " |")
        print("|---|" + "---|" * len(WORKERS))
        for label, _, _, dataset in layouts:
            rates = [epoch_rate(dataset, w, args.repeats) for w in WORKERS]
            print(f"| {label} | " + " | ".join(f"{r:.0f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
