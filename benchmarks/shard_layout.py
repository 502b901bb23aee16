#!/usr/bin/env python
"""Chunking and compression of shard datasets: file size against random-access read speed.

Writes the same HR/LR patch pairs (cut from scikit-image photos) with several layouts and reads
single samples in random order, as a shuffling DataLoader does. Prints a table.

  python benchmarks/shard_layout.py            # 512 samples of 192² HR patches
  python benchmarks/shard_layout.py --quick    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import h5py
import numpy as np

from adl.data.sample_data import sample_photos
from adl.degradation import degrade
from adl.kernels import synthetic_kernel

LAYOUTS = [  # (chunk samples, compression, options)
    (1, None, None), (4, None, None), (1, "lzf", None), (4, "lzf", None), (16, "lzf", None),
    (1, "gzip", 1), (4, "gzip", 1), (4, "gzip", 4),
]


def patches(count: int, patch: int, scale: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    photos = list(sample_photos().values())
    kernel = synthetic_kernel("k2", scale)
    hr = np.empty((count, patch, patch, 3), np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        y, x = rng.integers(photo.shape[0] - patch + 1), rng.integers(photo.shape[1] - patch + 1)
        hr[i] = photo[y : y + patch, x : x + patch]
    lr = np.stack([degrade(h, kernel, scale) for h in hr])
    return hr, lr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--patch", type=int, default=192)
    p.add_argument("--reads", type=int, default=2000)
    args = p.parse_args()
    if args.quick:
        args.samples, args.patch, args.reads = 32, 64, 100
    hr, lr = patches(args.samples, args.patch, 2)
    raw = hr.nbytes + lr.nbytes
    print(f"{args.samples} samples of {args.patch}² HR + {args.patch // 2}² LR, {raw / 2**20:.1f} MiB raw; "
          f"{args.reads} random single-sample reads\n")
    print("| chunk (samples) | compression | size (MiB) | ratio | write s | reads/s |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    order = rng.integers(args.samples, size=args.reads)
    with tempfile.TemporaryDirectory() as work:
        for chunk, compression, level in LAYOUTS:
            path = os.path.join(work, f"{chunk}-{compression}-{level}.h5")
            started = time.perf_counter()
            with h5py.File(path, "w") as f:
                for name, data in (("hr", hr), ("lr", lr)):
                    f.create_dataset(name, data=data, chunks=(chunk, *data.shape[1:]), compression=compression,
                                     compression_opts=level, track_times=False)
            written = time.perf_counter() - started
            size = os.path.getsize(path)
            with h5py.File(path, "r") as f:
                started = time.perf_counter()
                for i in order:
                    f["hr"][i], f["lr"][i]
                reads = args.reads / (time.perf_counter() - started)
            label = compression if compression is None or level is None else f"{compression}-{level}"
            print(f"| {chunk} | {label} | {size / 2**20:.1f} | {raw / size:.2f} | {written:.2f} | {reads:.0f} |")


if __name__ == "__main__":
    main()
