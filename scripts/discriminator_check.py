#!/usr/bin/env python
"""Can D tell real LR from a fixed downsampler's output? A diagnostic of Algorithm 1's adversary.

G is frozen to one kernel (the 2×2 box G starts from, bicubic, or the true kernel) and D alone is
trained on the unpaired sets, exactly as in train-downsampler (same sampler, losses, init, Adam).
Every --every iterations it prints D's accuracy on fresh batches (logit > 0 means "real"). A D
that beats chance against the box but not against the true kernel can guide G; one that beats
chance against the true kernel too is telling the sets apart by their content, not their blur.

  python scripts/discriminator_check.py --hr H --lr L --fixed box --fixed k3 --iterations 600
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from adl.degradation import apply_kernel
from adl.downsampler.losses import discriminator_loss
from adl.downsampler.patches import (
    UnpairedPatches,
    load_images,
    patch_loader,
    to_unit_range,
)
from adl.imageio import list_images
from adl.kernels import resolve_kernel
from adl.nets import Discriminator


def box(scale: int) -> np.ndarray:
    k = np.zeros((10 * scale, 10 * scale))
    middle = (10 * scale - scale) // 2
    k[middle : middle + scale, middle : middle + scale] = 1 / scale**2
    return k


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hr", required=True), p.add_argument("--lr", required=True)
    p.add_argument("--fixed", action="append", required=True, help="box, k0..k4 or a .npy; repeat to compare")
    p.add_argument("--disc-norm", default="instance", choices=("none", "instance"))
    p.add_argument("--disc-width", type=int, default=32)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr-patch", type=int, default=32)
    p.add_argument("--lr-rate", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    s = 2
    hr_images = load_images(list_images(args.hr), 2 * args.lr_patch, "HR images", "--lr-patch")
    lr_images = load_images(list_images(args.lr), args.lr_patch, "LR images", "--lr-patch")
    data = UnpairedPatches(hr_images, lr_images, 2 * args.lr_patch, args.lr_patch, args.seed)
    held_out = UnpairedPatches(hr_images, lr_images, 2 * args.lr_patch, args.lr_patch, args.seed + 1)
    print("fixed,iteration,loss_d,acc_real,acc_fake")
    for name in args.fixed:
        kernel = torch.from_numpy(box(s) if name == "box" else resolve_kernel(name, s)).float()
        torch.manual_seed(args.seed)
        D = Discriminator(args.disc_width, args.disc_norm)
        opt = torch.optim.Adam(D.parameters(), args.lr_rate)
        sums, n = 0.0, 0
        for i, (hr, lr) in enumerate(patch_loader(data, 0, args.iterations, args.batch_size, 0, False), 1):
            hr, lr = to_unit_range(hr, "cpu"), to_unit_range(lr, "cpu")
            with torch.no_grad():
                fake = apply_kernel(hr, kernel, s)
            loss = discriminator_loss(D(lr), D(fake))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums, n = sums + loss.item(), n + 1
            if i % args.every == 0:
                real_ok = fake_ok = total = 0
                with torch.no_grad():
                    for hr_t, lr_t in patch_loader(held_out, i, i + 8, 32, 0, False):
                        fake_t = apply_kernel(to_unit_range(hr_t, "cpu"), kernel, s)
                        real_ok += (D(to_unit_range(lr_t, "cpu")) > 0).sum().item()
                        fake_ok += (D(fake_t) <= 0).sum().item()
                        total += len(hr_t)
                print(f"{name},{i},{sums / n:.4f},{real_ok / total:.3f},{fake_ok / total:.3f}", flush=True)
                sums, n = 0.0, 0


if __name__ == "__main__":
    main()
