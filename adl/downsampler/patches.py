"""Unpaired patch sampling for the downsampler trainer, from images held in memory as uint8.

Sample ``i`` is a pure function of (seed, stream, i): its image and position come from a generator
seeded with that triple. ``--patch-sampling uniform`` draws an image uniformly, then a uniform
position; ``texture`` draws a crop with probability proportional to its mean gradient magnitude
(TextureCrops, after KernelGAN's crops), from weights that depend on the images only. A resumed run therefore sees exactly the batches an uninterrupted run
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


TEXTURE_GRID = 16  # texture weights sit on a grid of step patch // 16 (at least 1): memory stays small


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """H×W float64: |∇L| of the luminance L (the mean of the channels, 8-bit units), forward
    differences, the last row's and column's missing difference taken as 0."""
    lum = image.astype(np.float64).mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    dx, dy = np.zeros_like(lum), np.zeros_like(lum)
    dx[:, :-1], dy[:-1, :] = lum[:, 1:] - lum[:, :-1], lum[1:, :] - lum[:-1, :]
    return np.hypot(dx, dy)


def crop_texture(image: np.ndarray, patch: int, step: int) -> np.ndarray:
    """The mean gradient magnitude of the patch×patch crop at every (y, x) on the grid of ``step``."""
    grad = gradient_magnitude(image)
    total = np.zeros((grad.shape[0] + 1, grad.shape[1] + 1))
    total[1:, 1:] = grad.cumsum(0).cumsum(1)
    ys = np.arange(0, grad.shape[0] - patch + 1, step)[:, None]
    xs = np.arange(0, grad.shape[1] - patch + 1, step)[None, :]
    window = total[ys + patch, xs + patch] - total[ys, xs + patch] - total[ys + patch, xs] + total[ys, xs]
    return np.maximum(window, 0.0) / patch**2


class TextureCrops:
    """Crops drawn with probability proportional to their mean gradient magnitude (KernelGAN crops
    where the image has texture): a grid cell (image, y0, x0) by its crop's texture, then a uniform
    offset within the cell. Flat crops are never drawn; a set with no texture at all is sampled
    uniformly. Weights depend on the images only, so a sample stays a pure function of its generator.
    """

    def __init__(self, images: Sequence[np.ndarray], patch: int):
        self.patch, self.step = patch, max(1, patch // TEXTURE_GRID)
        self.shapes = [im.shape for im in images]
        self.weights = [crop_texture(im, patch, self.step).astype(np.float32) for im in images]
        self.image_cdf = np.cumsum([w.sum(dtype=np.float64) for w in self.weights])

    def __call__(self, rng: np.random.Generator) -> tuple[int, int, int]:
        if not self.image_cdf[-1] > 0:
            return crop_position(self.shapes, self.patch, rng)
        n = min(int(np.searchsorted(self.image_cdf, rng.random() * self.image_cdf[-1], side="right")),
                len(self.shapes) - 1)
        weights = self.weights[n]
        cdf = np.cumsum(weights, dtype=np.float64).ravel()
        k = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), cdf.size - 1)
        gy, gx = divmod(k, weights.shape[1])
        y0, x0 = gy * self.step, gx * self.step
        y = y0 + int(rng.integers(min(self.step, self.shapes[n][0] - self.patch - y0 + 1)))
        x = x0 + int(rng.integers(min(self.step, self.shapes[n][1] - self.patch - x0 + 1)))
        return n, y, x


class UniformCrops:
    """crop_position as a sampler: an image chosen uniformly, then a uniform position."""

    def __init__(self, images: Sequence[np.ndarray] | None, patch: int, shapes=None):
        self.shapes, self.patch = shapes if shapes is not None else [im.shape for im in images], patch

    def __call__(self, rng: np.random.Generator) -> tuple[int, int, int]:
        return crop_position(self.shapes, self.patch, rng)


def crop_sampler(kind: str, images: Sequence[np.ndarray], patch: int):
    """--patch-sampling's sampler for one side."""
    if kind not in ("uniform", "texture"):
        raise AdlError(f"--patch-sampling {kind}: expected uniform or texture")
    return TextureCrops(images, patch) if kind == "texture" else UniformCrops(images, patch)


class UnpairedPositions(Dataset):
    """Item ``i`` is the 2×3 int64 tensor [[n, y, x] of the HR patch, [n, y, x] of the LR patch].

    The two patches are drawn independently, each from a generator seeded with (seed, stream, i),
    uniformly unless samplers (crop_sampler) are given for the two sides.
    """

    def __init__(self, hr_shapes, lr_shapes, hr_patch: int, lr_patch: int, seed: int, samplers=None):
        self.hr_shapes, self.lr_shapes = hr_shapes, lr_shapes
        self.hr_patch, self.lr_patch, self.seed = hr_patch, lr_patch, seed
        self.samplers = samplers or (UniformCrops(None, hr_patch, hr_shapes), UniformCrops(None, lr_patch, lr_shapes))

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        hr = self.samplers[0](np.random.default_rng([self.seed, HR_STREAM, index]))
        lr = self.samplers[1](np.random.default_rng([self.seed, LR_STREAM, index]))
        return torch.tensor([hr, lr], dtype=torch.int64)


def crop(image: np.ndarray, y: int, x: int, patch: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image[y : y + patch, x : x + patch].transpose(2, 0, 1)))


class UnpairedPatches(UnpairedPositions):
    """Item ``i`` is the (HR patch, LR patch) pair, 3×P×P uint8, at the positions of item ``i``."""

    def __init__(self, hr_images, lr_images, hr_patch: int, lr_patch: int, seed: int, sampling: str = "uniform"):
        samplers = crop_sampler(sampling, hr_images, hr_patch), crop_sampler(sampling, lr_images, lr_patch)
        super().__init__([im.shape for im in hr_images], [im.shape for im in lr_images], hr_patch, lr_patch, seed,
                         samplers)
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
