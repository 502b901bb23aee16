"""Training pairs for the SR stage: where the LR side comes from, and aligned random patches.

An LR source produces, for every HR training image, the LR image the SR network learns to
invert (paper Table 2):

  bicubic              B(HR): the "Bicubic" row (k0 through the shared degradation operator)
  kernel:{k0..k4|K.npy}(HR ∗ k)↓s: the "Oracle" row
  downsampler:PATH     G(HR) from a trained downsampler (applied twice at ×4): the "Proposed" row
  pairs:DIR            LR files matched to the HR files by name
  shards:DIR           (LR, HR) patch pairs from ``adl generate`` shards (no --hr needed)

LR images made here come from the same functions as ``adl degrade`` and ``adl downsample``
(adl.degradation.degrade, adl.downsampler.apply.downsample_image), so files on disk and pairs made
on the fly are identical. Every LR image is made once, up front, and held in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from adl.degradation import check_pair, crop_to_scale, degrade
from adl.errors import AdlError
from adl.imageio import list_images, pair_by_stem, read_image
from adl.progress import progress
from adl.shards.dataset import ShardDataset, augment
from adl.sr.options import LRSource

SR_STREAM = 2  # keeps SR patch draws independent of the downsampler's HR/LR streams




def make_lr_images(source: LRSource, hr_paths: Sequence[Path], hr_images: Sequence[np.ndarray], scale: int,
                   device: torch.device) -> list[np.ndarray]:
    """The LR partner of each HR image (each HR image is used cropped to a multiple of ``scale``)."""
    if source.kind in ("bicubic", "kernel"):
        from adl.kernels import resolve_kernel

        kernel = resolve_kernel("k0" if source.kind == "bicubic" else source.argument, scale)
        return [degrade(hr, kernel, scale, device)
                for hr in progress(hr_images, desc=f"LR ({source.kind})", unit="img", leave=False)]
    if source.kind == "downsampler":
        from adl.downsampler.apply import downsample_image, load_downsampler

        model, _ = load_downsampler(source.argument, device, option="--lr-source downsampler:")
        return [downsample_image(model, hr, scale, device)
                for hr in progress(hr_images, desc="LR (downsampler)", unit="img", leave=False)]
    pairs = pair_by_stem(list(hr_paths), list_images(source.argument, what="--lr-source pairs:"),
                         "--hr", f"--lr-source pairs:{source.argument}")
    lr_images = []
    for (hr_path, lr_path), hr in zip(pairs, hr_images):
        lr = read_image(lr_path)
        check_pair(hr, lr, scale, hr_path, lr_path)
        lr_images.append(lr)
    return lr_images






class PairedPatches(Dataset):
    """Item ``i``: an aligned (LR, HR) patch pair, a pure function of (seed, i), as uint8 CHW."""

    def __init__(self, lr_images, hr_images, lr_patch: int, scale: int, seed: int, flips: bool = True):
        self.lr_images, self.hr_images = lr_images, [crop_to_scale(h, scale) for h in hr_images]
        self.lr_patch, self.scale, self.seed, self.flips = lr_patch, scale, seed, flips

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, SR_STREAM, index])
        k = rng.integers(len(self.lr_images))
        lr_img, hr_img = self.lr_images[k], self.hr_images[k]
        p, s = self.lr_patch, self.scale
        y = rng.integers(lr_img.shape[0] - p + 1)
        x = rng.integers(lr_img.shape[1] - p + 1)
        lr = lr_img[y : y + p, x : x + p]
        hr = hr_img[s * y : s * (y + p), s * x : s * (x + p)]
        if self.flips:
            lr, hr = augment(lr, hr, rng)
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))))


class ShardPatches(Dataset):
    """Like PairedPatches, but drawing from the stored pairs of a shard directory.

    Item ``i`` picks a stored pair and a crop inside it from (seed, i), so resuming stays exact;
    the stored patch may be larger than the training patch.
    """

    def __init__(self, shard_dir: str, lr_patch: int, scale: int, seed: int, flips: bool = True):
        self.shards = ShardDataset(shard_dir)
        if self.shards.scale != scale:
            raise AdlError(f"--lr-source shards:{shard_dir}: shards are ×{self.shards.scale}, this run is ×{scale}")
        stored = self.shards.manifest["options"]["patch"] // scale
        if stored < lr_patch:
            raise AdlError(f"--hr-patch {lr_patch * scale}: larger than the {stored * scale} patches stored in "
                           f"{shard_dir}; lower --hr-patch")
        if len(self.shards) == 0:
            raise AdlError(f"--lr-source shards:{shard_dir}: no samples")
        self.lr_patch, self.scale, self.seed, self.flips, self.stored = lr_patch, scale, seed, flips, stored

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, SR_STREAM, index])
        lr_img, hr_img = self.shards.raw(int(rng.integers(len(self.shards))))
        p, s = self.lr_patch, self.scale
        y, x = rng.integers(self.stored - p + 1), rng.integers(self.stored - p + 1)
        lr, hr = lr_img[y : y + p, x : x + p], hr_img[s * y : s * (y + p), s * x : s * (x + p)]
        if self.flips:
            lr, hr = augment(lr, hr, rng)
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))))


