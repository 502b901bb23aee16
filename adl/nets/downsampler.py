"""The ×2 downsampler G of method.md §2 (887,683 parameters at width 64).

Input and output are in [-1, 1]. The global skip adds a 2×2 average pooling of the input, so
an untrained G already starts near box downsampling and the body learns the residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_unit(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Reflection padding → conv (with bias) → InstanceNorm (no affine) → ReLU."""
    layers: list[nn.Module] = []
    pad_before, pad_after = (kernel_size - 1) // 2, kernel_size // 2
    if stride == 1 and kernel_size > 1:
        # Even kernels pad one more on the right/bottom so the output keeps the input size.
        layers.append(nn.ReflectionPad2d((pad_before, pad_after, pad_before, pad_after)))
    layers += [
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride),
        nn.InstanceNorm2d(c_out, affine=False),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.body = conv_unit(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SkipGroup(nn.Module):
    """A run of residual units with one more skip connection around all of them."""

    def __init__(self, channels: int, kernel_size: int, units: int):
        super().__init__()
        self.units = nn.Sequential(*(ResidualUnit(channels, kernel_size) for _ in range(units)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.units(x)


class Downsampler(nn.Module):
    scale = 2

    def __init__(self, width: int = 64):
        super().__init__()
        self.width = width
        self.head = conv_unit(3, width, 3)
        self.body1 = SkipGroup(width, 5, units=4)
        self.down = conv_unit(width, 2 * width, 2, stride=2)
        self.body2 = SkipGroup(2 * width, 3, units=3)
        self.tail = nn.Conv2d(2 * width, 3, 1)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body2(self.down(self.body1(self.head(x))))
        return self.tail(features) + F.avg_pool2d(x, 2)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, 0.02) weights as in Algorithm 1, line 1; biases start at zero."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_downsampler(generator: str, width: int) -> nn.Module:
    """The G a run's options name: the paper's network, or the one-kernel diagnostic (adl.nets.linear)."""
    if generator == "linear":
        from adl.nets.linear import LinearDownsampler

        return LinearDownsampler(width)
    if generator != "deep":
        raise ValueError(f"unknown generator {generator!r}")
    return Downsampler(width)
