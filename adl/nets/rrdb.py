"""The ESRGAN generator (RRDBNet) of method.md §7: 16,697,987 parameters at ×4 with 23 blocks.

Input and output are RGB floats in [0, 1], as in ESRGAN (no mean shift). Module and parameter
names are those of ESRGAN's RRDBNet_arch.py (conv_first, RRDB_trunk.N.RDBk.convj, trunk_conv,
upconv1/2, HRconv, conv_last), so a released RRDB_PSNR_x4.pth state dict loads as is. Class
names differ (the block is not called ``RRDB`` here) because ``adl.nets.RRDB`` names the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adl.nets.edsr import check_scale, conv3x3, receptive_radius


class ResidualDenseBlock_5C(nn.Module):
    """Five densely connected 3×3 convs; the output is scaled by 0.2 before the skip."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = conv3x3(nf, gc)
        self.conv2 = conv3x3(nf + gc, gc)
        self.conv3 = conv3x3(nf + 2 * gc, gc)
        self.conv4 = conv3x3(nf + 3 * gc, gc)
        self.conv5 = conv3x3(nf + 4 * gc, nf)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        # BasicSR's training init for these convs: Kaiming-normal ×0.1, zero bias. With 69 dense
        # blocks in the trunk, small residual branches keep the untrained network near identity.
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + 0.2 * x5


class ResidualInResidualDenseBlock(nn.Module):
    """Residual-in-residual dense block: three dense blocks, and a 0.2-scaled skip around them."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.RDB1 = ResidualDenseBlock_5C(nf, gc)
        self.RDB2 = ResidualDenseBlock_5C(nf, gc)
        self.RDB3 = ResidualDenseBlock_5C(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


class RRDBNet(nn.Module):
    def __init__(self, scale: int, n_feats: int = 64, n_blocks: int = 23, growth: int = 32):
        super().__init__()
        self.scale = check_scale(scale, "RRDB")
        self.n_feats, self.n_blocks, self.growth = n_feats, n_blocks, growth
        self.conv_first = conv3x3(3, n_feats)
        self.RRDB_trunk = nn.Sequential(*(ResidualInResidualDenseBlock(n_feats, growth) for _ in range(n_blocks)))
        self.trunk_conv = conv3x3(n_feats, n_feats)
        self.steps = scale.bit_length() - 1  # 1 for ×2, 2 for ×4
        self.upconv1 = conv3x3(n_feats, n_feats)
        if self.steps == 2:
            self.upconv2 = conv3x3(n_feats, n_feats)
        self.HRconv = conv3x3(n_feats, n_feats)
        self.conv_last = conv3x3(n_feats, 3)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        # Longest path at LR: conv_first, 5 convs per dense block (the conv1→…→conv5 chain),
        # trunk_conv. Then one upconv after each ×2 step, and HRconv + conv_last at the output.
        upsampled = {2**i: 1 for i in range(1, self.steps + 1)}
        upsampled[scale] += 2
        self.receptive_radius = receptive_radius(1 + 15 * n_blocks + 1, upsampled, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """1×3×h×w RGB in [0, 1] → 1×3×(scale·h)×(scale·w) RGB, nominally in [0, 1] (not clamped)."""
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))
        if self.steps == 2:
            fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.HRconv(fea)))
