"""The patch discriminator of method.md §3 (17,423,489 parameters at width 64).

A 64×64 LR patch gives a 3×3 map of logits; each logit judges a receptive field of about
the whole patch, which is what lets D see the kernel's fine structure.
"""

from __future__ import annotations

import torch
from torch import nn

from adl.choices import DISC_NORMS, DISC_VIEWS
from adl.nets.downsampler import init_normal


def disc_unit(c_in: int, c_out: int, kernel_size: int, stride: int, norm: str) -> nn.Sequential:
    """Reflection padding → conv → [InstanceNorm] → LeakyReLU(0.01); no spectral norm."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(c_in, c_out, kernel_size, stride=stride)]
    if norm == "instance":
        layers.append(nn.InstanceNorm2d(c_out, affine=False))
    layers.append(nn.LeakyReLU(0.01, inplace=True))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    def __init__(self, width: int = 64, norm: str = "instance"):
        super().__init__()
        if norm not in DISC_NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}; choose from {', '.join(DISC_NORMS)}")
        self.width, self.norm = width, norm
        channels = [width * 2**i for i in range(5)]  # 64, 128, 256, 512, 1024
        layers = [disc_unit(3, channels[0], 7, stride=1, norm=norm)]
        layers += [disc_unit(a, b, 5, stride=2, norm=norm) for a, b in zip(channels, channels[1:])]
        layers.append(nn.Conv2d(channels[-1], 1, 2, stride=1))
        self.layers = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LocalDiscriminator(nn.Module):
    """``--disc-view local`` (issue 16): KernelGAN's fully convolutional D, a diagnostic option, not the
    paper's. One valid 7×7 convolution, then 1×1 convolutions: each logit sees a 7×7 LR window only,
    too little for the photos' content, enough for the blur (docs/fidelity.md, issue 16)."""

    def __init__(self, width: int = 64, norm: str = "instance", depth: int = 5):
        super().__init__()
        if norm not in DISC_NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}; choose from {', '.join(DISC_NORMS)}")
        self.width, self.norm = width, norm
        layers: list[nn.Module] = [nn.Conv2d(3, width, 7)]
        for _ in range(depth):
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(width, affine=False))
            layers += [nn.LeakyReLU(0.01, inplace=True), nn.Conv2d(width, width, 1)]
        layers += [nn.LeakyReLU(0.01, inplace=True), nn.Conv2d(width, 1, 1)]
        self.layers = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_discriminator(view: str, width: int, norm: str) -> nn.Module:
    if view not in DISC_VIEWS:
        raise ValueError(f"unknown discriminator view {view!r}; choose from {', '.join(DISC_VIEWS)}")
    return Discriminator(width, norm) if view == "paper" else LocalDiscriminator(width, norm)
