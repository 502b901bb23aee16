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

from adl.errors import AdlError
from adl.imageio import read_image
from adl.progress import progress

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


def crop_position(shapes: Sequence[tuple[int, ...]], patch: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(image, y, x) of one patch: an image chosen uniformly, then a uniform position in it."""
    n = int(rng.integers(len(shapes)))
    y = int(rng.integers(shapes[n][0] - patch + 1))
    x = int(rng.integers(shapes[n][1] - patch + 1))
    return n, y, x


class UnpairedPositions(Dataset):
    """Item ``i`` is the 2×3 int64 tensor [[n, y, x] of the HR patch, [n, y, x] of the LR patch].

    The two patches are drawn independently, each from a generator seeded with (seed, stream, i).
    """

    def __init__(self, hr_shapes, lr_shapes, hr_patch: int, lr_patch: int, seed: int):
        self.hr_shapes, self.lr_shapes = hr_shapes, lr_shapes
        self.hr_patch, self.lr_patch, self.seed = hr_patch, lr_patch, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        hr = crop_position(self.hr_shapes, self.hr_patch, np.random.default_rng([self.seed, HR_STREAM, index]))
        lr = crop_position(self.lr_shapes, self.lr_patch, np.random.default_rng([self.seed, LR_STREAM, index]))
        return torch.tensor([hr, lr], dtype=torch.int64)


def crop(image: np.ndarray, y: int, x: int, patch: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image[y : y + patch, x : x + patch].transpose(2, 0, 1)))


class UnpairedPatches(UnpairedPositions):
    """Item ``i`` is the (HR patch, LR patch) pair, 3×P×P uint8, at the positions of item ``i``."""

    def __init__(self, hr_images, lr_images, hr_patch: int, lr_patch: int, seed: int):
        super().__init__([im.shape for im in hr_images], [im.shape for im in lr_images], hr_patch, lr_patch, seed)
        self.hr_images, self.lr_images = hr_images, lr_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        (hn, hy, hx), (ln, ly, lx) = super().__getitem__(index).tolist()
        return crop(self.hr_images[hn], hy, hx, self.hr_patch), crop(self.lr_images[ln], ly, lx, self.lr_patch)


class ResidentImages:
    """HxWx3 uint8 images of any sizes kept in one flat tensor on a device, cut by one gather.

    With the images on the GPU, a batch costs the host only its positions (a few integers per
    patch); the pixels never cross the bus again.
    """

    def __init__(self, images: Sequence[np.ndarray], device: torch.device):
        sizes = torch.tensor([im.shape[:2] for im in images], dtype=torch.int64)
        lengths = sizes[:, 0] * sizes[:, 1] * 3
        starts = torch.cumsum(lengths, 0) - lengths
        # Image by image, so the host never holds a second copy of the whole set.
        self.pixels = torch.empty(int(lengths.sum()), dtype=torch.uint8, device=device)
        for image, start, length in zip(images, starts.tolist(), lengths.tolist()):
            self.pixels[start : start + length] = torch.from_numpy(np.ascontiguousarray(image)).reshape(-1)
        self.starts, self.widths = starts.to(device), sizes[:, 1].to(device)
        self.device = device

    @staticmethod
    def nbytes(images: Sequence[np.ndarray]) -> int:
        return sum(im.nbytes for im in images)

    def crop(self, positions: torch.Tensor, patch: int) -> torch.Tensor:
        """B×3 (n, y, x) positions → B×3×P×P uint8 patches, on the images' device."""
        n, y, x = positions.to(self.device, non_blocking=True).unbind(1)
        width = self.widths[n].view(-1, 1, 1, 1)
        first = (self.starts[n] + (y * self.widths[n] + x) * 3).view(-1, 1, 1, 1)
        steps = torch.arange(patch, device=self.device)
        index = first + (steps.view(1, -1, 1, 1) * width + steps.view(1, 1, -1, 1)) * 3 \
            + torch.arange(3, device=self.device).view(1, 1, 1, 3)
        return self.pixels[index].permute(0, 3, 1, 2)


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


def loader_workers(workers: int | None, device: torch.device) -> int:
    """``--workers`` as given, or by default none on CPU (no gain on few cores, simpler to debug)
    and 4 on CUDA, where assembling batches in the main thread would leave the GPU waiting."""
    if workers is not None:
        return workers
    return 4 if device.type == "cuda" else 0


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
