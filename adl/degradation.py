"""The degradation operator I_LR = (I_HR ∗ k)↓s of method.md §1, in torch (CPU or GPU).

One function, ``apply_kernel``, serves every place that needs it: ``adl degrade``, the bicubic
and ADL data terms, and (later) on-the-fly SR pairs, so that they cannot drift apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adl.errors import AdlError, naming
from adl.imageio import crop_to_scale  # noqa: F401  (re-exported: part of this module's vocabulary)
from adl.kernels import fits_scale
from adl.noise_law import NoiseLaw, image_rng


def kernel_tensor(kernel: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(kernel) if not torch.is_tensor(kernel) else kernel).to(like)


def apply_kernel(x: torch.Tensor, kernel: np.ndarray | torch.Tensor, scale: int) -> torch.Tensor:
    """Correlate each channel of ``x`` (N,C,H,W) with ``kernel`` and sample every ``scale``-th pixel.

    H and W must be multiples of ``scale``. Borders replicate edge pixels. The kernel's centre
    ((K-1)/2) is aligned with HR coordinate s*i + (s-1)/2 of LR pixel i, which needs (K - s) even;
    padding by (K - s)/2 on every side then yields exactly H/s x W/s outputs.
    """
    k = kernel_tensor(kernel, x)
    kh, kw = k.shape
    n, c, h, w = x.shape
    if h % scale or w % scale:
        raise ValueError(f"apply_kernel: size {h}x{w} is not a multiple of scale {scale}")
    if not (fits_scale(kh, scale) and fits_scale(kw, scale)):
        raise ValueError(f"apply_kernel: a {kh}x{kw} kernel does not fit scale {scale}")
    ph, pw = (kh - scale) // 2, (kw - scale) // 2
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph), mode="replicate")
    weight = k.expand(c, 1, kh, kw)
    return F.conv2d(x, weight, stride=scale, groups=c)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """HxWx3 uint8 → 1x3xHxW float32 in [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """1x3xHxW float in [0, 255] → HxWx3 uint8, rounded half to even and clipped."""
    return x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def degrade(image: np.ndarray, kernel: np.ndarray, scale: int, device: torch.device | str = "cpu",
            noise: NoiseLaw | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """(I_HR ∗ k)↓s (+ n) for one HxWx3 uint8 image, cropped to a multiple of s first; returns uint8.
    The noise n of ``noise``, drawn from ``rng``, is added to the float LR before rounding (eq. 1)."""
    hr = crop_to_scale(image, scale)
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise AdlError(f"image of size {image.shape[1]}x{image.shape[0]} is smaller than the scale {scale}")
    with torch.no_grad():
        lr = apply_kernel(to_tensor(hr, device), kernel, scale)
    if noise is None:
        return to_uint8(lr)
    clean = lr[0].permute(1, 2, 0).cpu().numpy()
    return np.clip(np.rint(clean + noise.sample(clean, rng)), 0, 255).astype(np.uint8)


def check_pair(hr: np.ndarray, lr: np.ndarray, scale: int, hr_path, lr_path) -> None:
    """An LR image is its HR image's size divided by the scale (HR cropped to a multiple of it)."""
    want = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != want:
        raise AdlError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not match HR {hr_path} "
                       f"({want[1] * scale}x{want[0] * scale} after cropping to a multiple of {scale}), which needs "
                       f"LR {want[1]}x{want[0]} at ×{scale}; pair each HR image with its own LR image")


def degrade_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, kernel: np.ndarray, scale: int,
                   device: torch.device | str = "cpu", noise: NoiseLaw | None = None, seed: int = 0) -> int:
    """(HR ∗ k)↓s (+ n) of every image of a folder, written as PNG under the same names; returns the
    count. Image i of the sorted list draws its noise from ``image_rng(seed, i)``."""
    from adl.imageio import (
        list_images,
        read_image,
        refuse_same_folder,
        require_unique_stems,
        write_png,
    )
    from adl.progress import progress

    paths = require_unique_stems(list_images(input_dir, what="--input"), "--input")
    out = Path(output_dir)
    refuse_same_folder(Path(input_dir), out)
    for index, path in enumerate(progress(paths, desc="degrade", unit="img")):
        image = read_image(path)
        with naming(path):
            lr = degrade(image, kernel, scale, device, noise, image_rng(seed, index) if noise else None)
        write_png(out / f"{path.stem}.png", lr)
    return len(paths)
