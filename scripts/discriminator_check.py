#!/usr/bin/env python
"""Can D tell real LR from a fixed downsampler's output? A diagnostic of Algorithm 1's adversary.

G is frozen to one kernel (the 2×2 box G starts from, bicubic, or the true kernel) and D alone is
trained on the unpaired sets, exactly as in train-downsampler (same sampler, losses, init, Adam).
Every --every iterations it prints D's accuracy on fresh batches (logit > 0 means "real"). A D
that beats chance against the box but not against the true kernel can guide G; one that beats
chance against the true kernel too is telling the sets apart by their content, not their blur.

  python scripts/discriminator_check.py --hr H --lr L --fixed box --fixed k3 --iterations 600

With --per-patch CSV, the final D also scores --held-out uniformly drawn held-out patches of each
class; the CSV gets one row per patch (its texture: the mean gradient magnitude of the 8-bit LR
patch D saw, as adl.downsampler.patches.crop_texture computes it), and the accuracy per texture
quartile is printed (issue 16: does D fail on flat patches?). --patch-sampling texture trains D on
texture-weighted crops, as train-downsampler --patch-sampling texture does.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from adl.degradation import apply_kernel
from adl.downsampler.losses import discriminator_loss
from adl.downsampler.patches import (
    UnpairedPatches,
    gradient_magnitude,
    load_images,
    patch_loader,
    to_unit_range,
)
from adl.imageio import list_images
from adl.kernels import resolve_kernel
from adl.nets.discriminator import build_discriminator


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
    p.add_argument("--disc-view", default="paper", choices=("paper", "local"))
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr-patch", type=int, default=32)
    p.add_argument("--lr-rate", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patch-sampling", default="uniform", choices=("uniform", "texture"))
    p.add_argument("--per-patch", help="CSV of the final D's held-out score per patch against its texture")
    p.add_argument("--held-out", type=int, default=512, help="held-out patches per class for --per-patch")
    args = p.parse_args()
    s = 2
    hr_images = load_images(list_images(args.hr), 2 * args.lr_patch, "HR images", "--lr-patch")
    lr_images = load_images(list_images(args.lr), args.lr_patch, "LR images", "--lr-patch")
    data = UnpairedPatches(hr_images, lr_images, 2 * args.lr_patch, args.lr_patch, args.seed, args.patch_sampling)
    held_out = UnpairedPatches(hr_images, lr_images, 2 * args.lr_patch, args.lr_patch, args.seed + 1)
    print("fixed,iteration,loss_d,acc_real,acc_fake")
    rows = []
    for name in args.fixed:
        kernel = torch.from_numpy(box(s) if name == "box" else resolve_kernel(name, s)).float()
        torch.manual_seed(args.seed)
        D = build_discriminator(args.disc_view, args.disc_width, args.disc_norm)
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
                        real_ok += (D(to_unit_range(lr_t, "cpu")).flatten(1).mean(1) > 0).sum().item()
                        fake_ok += (D(fake_t).flatten(1).mean(1) <= 0).sum().item()
                        total += len(hr_t)
                print(f"{name},{i},{sums / n:.4f},{real_ok / total:.3f},{fake_ok / total:.3f}", flush=True)
                sums, n = 0.0, 0
        if args.per_patch:
            rows.extend(per_patch_scores(D, held_out, kernel, s, name, args.iterations, args.held_out))
    if args.per_patch:
        write_per_patch(args.per_patch, rows)


def texture(batch: torch.Tensor) -> np.ndarray:
    """Mean gradient magnitude of each N×3×P×P [-1, 1] patch, in 8-bit units after rounding."""
    pixels = ((batch + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
    return np.array([gradient_magnitude(p)[:-1, :-1].mean() for p in pixels])


def per_patch_scores(D, held_out, kernel, s, name, start, count):
    """(fixed, class, texture, logit, correct) for ``count`` held-out patches of each class."""
    rows = []
    with torch.no_grad():
        for hr_t, lr_t in patch_loader(held_out, start, start + count // 32, 32, 0, False):
            fake = apply_kernel(to_unit_range(hr_t, "cpu"), kernel, s).clamp(-1, 1)
            real = to_unit_range(lr_t, "cpu")
            for label, batch in (("real", real), ("fake", fake)):
                logits = D(batch).flatten(1).mean(1).numpy()
                for t, z in zip(texture(batch), logits):
                    rows.append((name, label, t, z, int((z > 0) == (label == "real"))))
    return rows


def write_per_patch(path, rows) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fixed", "class", "texture", "logit", "correct"])
        w.writerows((a, b, f"{t:.4f}", f"{z:.4f}", c) for a, b, t, z, c in rows)
    print("fixed,class,texture_quartile,texture_range,patches,accuracy")
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        edges = np.quantile([r[2] for r in mine], [0, 0.25, 0.5, 0.75, 1])
        for label in ("real", "fake"):
            for q in range(4):
                sel = [r for r in mine if r[1] == label and edges[q] <= r[2] <= edges[q + 1]]
                acc = np.mean([r[4] for r in sel]) if sel else float("nan")
                print(f"{name},{label},{q + 1},{edges[q]:.2f}-{edges[q + 1]:.2f},{len(sel)},{acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
