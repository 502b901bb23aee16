"""Applying a trained downsampler G, at ×2 or by repetition at ×4 (paper eq. 5).

Between repetitions the image is rounded to 8 bits, as an LR file on disk would be; during
training the rounding passes gradients straight through so ×4 can be learned end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adl.downsampler.scales import min_input_size, repetitions
from adl.errors import AdlError, naming
from adl.nets.downsampler import Downsampler, build_downsampler

CHECKPOINT_KIND = "adl-downsampler"


def quantize(x: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """Round a [-1, 1] image to its nearest 8-bit level (optionally with identity gradient)."""
    q = ((x + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1
    return x + (q - x).detach() if straight_through else q


def apply_downsampler(model: nn.Module, x: torch.Tensor, scale: int, straight_through: bool = False) -> torch.Tensor:
    """G applied log2(scale) times to x in [-1, 1], 8-bit rounding in between; output unrounded."""
    y = model(x)
    for _ in range(repetitions(scale) - 1):
        y = model(quantize(y, straight_through))
    return y


class UnitRangeDownsampler(nn.Module):
    """G between [0, 1] images (repeated for ×4): the form retrieval and the ONNX file use."""

    def __init__(self, model: nn.Module, scale: int):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        return (apply_downsampler(self.model, hr * 2 - 1, self.scale) + 1) / 2


def image_tensor(image: torch.Tensor) -> torch.Tensor:
    """H×W×3 uint8 (on any device) → 1×3×H×W float32 in [-1, 1], a channels_last-strided view
    of the pixels: callers choose the memory format with one copy (or none)."""
    return image.permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)


def uint8_image(y: torch.Tensor) -> torch.Tensor:
    """1×3×h×w output of G in [-1, 1] → h×w×3 uint8, rounded as an LR file on disk is."""
    return ((y[0].float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def check_downsampler_input(h: int, w: int, scale: int) -> None:
    least = min_input_size(scale)
    if h < least or w < least:
        raise AdlError(f"image of size {w}x{h} is smaller than {least}x{least}, the least G downsamples at ×{scale}")


def downsample_image(model: nn.Module, image: np.ndarray, scale: int, device: torch.device) -> np.ndarray:
    """One HxWx3 uint8 image → its (H/s)x(W/s)x3 uint8 G(HR) in fp32, the HR cropped to a multiple of s."""
    h, w = image.shape[:2]
    image = image[: h - h % scale, : w - w % scale]
    check_downsampler_input(image.shape[0], image.shape[1], scale)
    x = image_tensor(torch.from_numpy(np.ascontiguousarray(image)).to(device)).contiguous()  # NCHW: the exact path
    with torch.no_grad():
        y = apply_downsampler(model, x, scale)
    return uint8_image(y).cpu().numpy()


def load_downsampler(path: str | Path, device: torch.device, option: str = "--checkpoint") -> tuple[Downsampler, dict]:
    """Load G from a training checkpoint (or a run folder holding ``checkpoint.pt``).

    ``option`` is the command-line option that named ``path``, for the error messages.
    """
    from adl.runs import read_checkpoint

    ckpt, path = read_checkpoint(path, CHECKPOINT_KIND, "downsampler", option)
    try:
        config = ckpt["config"]
        model = build_downsampler(config.get("generator", "deep"), config["width"])
        model.load_state_dict(ckpt["G"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # missing entries, or weights of another shape
        raise AdlError(f"{option} {path}: incomplete or damaged downsampler checkpoint "
                       f"({type(exc).__name__}); use the checkpoint.pt of a finished run") from None
    return model.to(device).eval(), config


def downsample_folder(checkpoint: str | os.PathLike, input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                      scale: int | None, device: torch.device, max_memory: int | None = None) -> int:
    """G(HR) of every image of a folder (at the run's scale unless ``scale``), as PNG under the same names.

    On CPU, an image that alone would take G past ``max_memory`` bytes (default: half the physical
    memory) is refused before it runs (adl.downsampler.memory)."""
    from adl.downsampler.memory import check_budget, check_image, default_budget
    from adl.imageio import (
        list_images,
        read_image,
        refuse_same_folder,
        require_unique_stems,
        write_png,
    )
    from adl.progress import progress

    budget = max_memory or default_budget()
    check_budget("torch", budget)
    model, config = load_downsampler(checkpoint, device)
    scale = scale or config["scale"]
    paths = require_unique_stems(list_images(input_dir, what="--input"), "--input")
    out = Path(output_dir)
    refuse_same_folder(Path(input_dir), out)
    for path in progress(paths, desc=f"downsample ×{scale}", unit="img"):
        image = read_image(path)
        with naming(path):
            if device.type == "cpu":  # a GPU's memory is another matter
                check_image("torch", budget, image.shape[0], image.shape[1])
            lr = downsample_image(model, image, scale, device)
        write_png(out / f"{path.stem}.png", lr)
    return len(paths)
