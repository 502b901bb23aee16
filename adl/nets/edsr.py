"""EDSR-baseline of method.md §7 (1,369,859 learnable parameters at ×2, 1,517,571 at ×4).

Input and output are RGB floats in [0, 1]. The original EDSR works in [0, 255] and shifts by
the DIV2K mean ×255; since the network is conv + ReLU only, that is the same function family
(a [0, 255] model equals this one with every bias divided by 255), differing only in the scale
of PyTorch's default initialisation relative to the data.

Module names follow the official EDSR code (head / body / tail) so its layout is recognisable;
the mean shift is a non-persistent buffer rather than a frozen conv, so it is neither a
parameter nor a state-dict entry.
"""

from __future__ import annotations

import torch
from torch import nn

from adl.choices import SCALES
from adl.errors import AdlError

# DIV2K training-set RGB mean, in [0, 1] units (EDSR's MeanShift uses it ×255).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

# Extra LR pixels on top of the exact bound below, so that tiles stay exact even if someone
# later adds a convolution without updating the count. Costs 2 pixels of context per tile side.
RECEPTIVE_SAFETY = 2


def receptive_radius(lr_convs: int, upsampled_convs: dict[int, int], scale: int) -> int:
    """An upper bound, in LR pixels, on how far an output pixel's dependence reaches in the input.

    ``lr_convs`` counts the 3×3 convolutions at LR resolution on the longest path;
    ``upsampled_convs`` maps an upsampling factor (2, 4, …) to the count of 3×3 convolutions
    at that resolution. Output pixel Y sits over LR pixel floor(Y/scale); every ×2 step (pixel
    shuffle or nearest) maps a position p to floor(p/2), so the reach of the upsampled convs,
    summed in output pixels, is D and their LR reach is at most ceil(D / scale).
    """
    reach = sum(n * (scale // factor) for factor, n in upsampled_convs.items())
    return lr_convs + -(-reach // scale) + RECEPTIVE_SAFETY


def check_scale(scale: int, model: str) -> int:
    if scale not in SCALES:
        raise AdlError(f"{model}: scale must be 2 or 4 (one or two ×2 upsampling steps), got {scale}")
    return scale


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResBlock(nn.Module):
    """conv–ReLU–conv with an identity skip; no batch norm (EDSR's point: BN hurts SR)."""

    def __init__(self, n_feats: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    def __init__(self, scale: int, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.scale = check_scale(scale, "EDSR")
        self.n_resblocks, self.n_feats, self.res_scale = n_resblocks, n_feats, res_scale
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        self.body = nn.Sequential(*(ResBlock(n_feats, res_scale) for _ in range(n_resblocks)), conv3x3(n_feats, n_feats))
        steps = scale.bit_length() - 1  # 1 for ×2, 2 for ×4
        upsampler: list[nn.Module] = []
        for _ in range(steps):
            upsampler += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        self.tail = nn.Sequential(nn.Sequential(*upsampler), conv3x3(n_feats, 3))
        # Longest path at LR: head, two per block, body end, first upsampler conv. Each later
        # upsampler conv runs at ×2, ×4, …; the tail conv runs at the output resolution.
        upsampled = {2**i: 1 for i in range(1, steps)}
        upsampled[scale] = upsampled.get(scale, 0) + 1
        self.receptive_radius = receptive_radius(1 + 2 * n_resblocks + 1 + 1, upsampled, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """1×3×h×w RGB in [0, 1] → 1×3×(scale·h)×(scale·w) RGB, nominally in [0, 1] (not clamped)."""
        x = self.head(x - self.rgb_mean)
        x = x + self.body(x)
        return self.tail(x) + self.rgb_mean
