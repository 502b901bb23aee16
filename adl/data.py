"""Unpaired patch sampling for the downsampler trainer, from images held in memory as uint8.

Sample ``i`` is a pure function of (seed, i): its image and position come from a generator
seeded with that pair. A resumed run therefore sees exactly the batches an uninterrupted run
would, with no sampler state to save, and DataLoader workers need no coordination.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from adl.progress import progress

from adl.errors import AdlError
from adl.imageio import read_image

HR_STREAM, LR_STREAM = 0, 1


def load_images(paths: Sequence[Path], min_size: int, what: str, option: str) -> list[np.ndarray]:
    """Decode every image once; refuse any smaller than ``min_size`` on a side, naming it."""
    images = []
    for path in progress(paths, desc=f"loading {what}", unit="img", leave=False):
        image = read_image(path)
        h, w = image.shape[:2]
        if h < min_size or w < min_size:
            raise AdlError(
                f"{path}: {w}x{h} is smaller than the {min_size}x{min_size} patch; "
                f"lower {option} or remove the image"
            )
        images.append(image)
    return images


def random_crop(images: Sequence[np.ndarray], patch: int, rng: np.random.Generator) -> torch.Tensor:
    """One patch from an image chosen uniformly, at a uniform position, as 3×P×P uint8."""
    image = images[rng.integers(len(images))]
    y = rng.integers(image.shape[0] - patch + 1)
    x = rng.integers(image.shape[1] - patch + 1)
    return torch.from_numpy(np.ascontiguousarray(image[y : y + patch, x : x + patch].transpose(2, 0, 1)))


class UnpairedPatches(Dataset):
    """Item ``i`` is an (HR patch, LR patch) pair drawn independently from the two sets."""

    def __init__(self, hr_images, lr_images, hr_patch: int, lr_patch: int, seed: int):
        self.hr_images, self.lr_images = hr_images, lr_images
        self.hr_patch, self.lr_patch, self.seed = hr_patch, lr_patch, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr = random_crop(self.hr_images, self.hr_patch, np.random.default_rng([self.seed, HR_STREAM, index]))
        lr = random_crop(self.lr_images, self.lr_patch, np.random.default_rng([self.seed, LR_STREAM, index]))
        return hr, lr


class IterationBatches(Sampler):
    """Batch ``t`` holds items [t·B, (t+1)·B); iteration counts start at ``start``."""

    def __init__(self, start: int, stop: int, batch_size: int):
        self.start, self.stop, self.batch_size = start, stop, batch_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        b = self.batch_size
        for t in range(self.start, self.stop):
            yield list(range(t * b, (t + 1) * b))


def patch_loader(dataset: Dataset, start: int, stop: int, batch_size: int, workers: int, pin: bool) -> DataLoader:
    # A private generator: otherwise each new DataLoader iterator draws its base seed from torch's
    # global RNG, so a resumed run (two loaders) would leave that RNG, which checkpoints save and
    # restore, in another state than an uninterrupted run (one loader). Items need no seed at all.
    return DataLoader(
        dataset,
        batch_sampler=IterationBatches(start, stop, batch_size),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=False,
        generator=torch.Generator(),
    )


def to_unit_range(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N×3×H×W → float32 in [-1, 1] on ``device``."""
    return batch.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
