"""Data terms L_data (method.md §4) and the vanilla GAN losses of Algorithm 1 (method.md §6).

All tensors are N×3×H×W in the networks' [-1, 1] range; HR is s times the size of G(HR).
Every data term is linear in its inputs, so working in [-1, 1] instead of [0, 255] only
rescales it, and kernels that sum to 1 commute with the affine map between the two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adl.choices import DATA_LOSSES
from adl.degradation import apply_kernel
from adl.kernels import bicubic_kernel, gaussian_kernel

LFL_BLOCK = 16  # LR block size of the low-frequency loss; HR uses 16·s.


def low_pass(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Non-overlapping depthwise filtering: stride equals the kernel size, no padding (impl)."""
    c, size = x.shape[1], kernel.shape[-1]
    return F.conv2d(x, kernel.expand(c, 1, size, size), stride=size, groups=c)


class DataTerm(nn.Module):
    """One data term, with its fixed filters held as buffers so ``.to(device)`` moves them once.

    ``adl`` needs a kernel (``set_kernel``) before use; Algorithm 1 runs ``lfl`` until then.
    """

    def __init__(self, name: str, scale: int):
        super().__init__()
        if name not in DATA_LOSSES:
            raise ValueError(f"unknown data loss {name!r}; choose from {', '.join(DATA_LOSSES)}")
        self.name, self.scale = name, scale
        b = LFL_BLOCK
        self.register_buffer("gauss_lr", torch.from_numpy(gaussian_kernel(b, 2.0, 2.0, 0.0)).float())
        self.register_buffer("gauss_hr", torch.from_numpy(gaussian_kernel(b * scale, 2.0 * scale, 2.0 * scale, 0.0)).float())
        self.register_buffer("bicubic", torch.from_numpy(bicubic_kernel(scale)).float())
        self.register_buffer("kernel", torch.zeros(0))

    def set_kernel(self, kernel: np.ndarray | torch.Tensor) -> None:
        self.kernel = torch.as_tensor(kernel).to(self.bicubic)

    @property
    def has_kernel(self) -> bool:
        return self.kernel.numel() > 0

    def forward(self, hr: torch.Tensor, fake: torch.Tensor, term: str | None = None) -> torch.Tensor:
        term = term or self.name
        s = self.scale
        if term == "lfl":
            return F.l1_loss(F.avg_pool2d(fake, LFL_BLOCK), F.avg_pool2d(hr, LFL_BLOCK * s))
        if term == "lfl-gauss":
            return F.l1_loss(low_pass(fake, self.gauss_lr), low_pass(hr, self.gauss_hr))
        if term == "bicubic":
            return F.l1_loss(fake, apply_kernel(hr, self.bicubic, s))
        if term == "avgpool":
            return F.l1_loss(fake, F.avg_pool2d(hr, s))
        if term == "adl":
            if not self.has_kernel:
                raise RuntimeError("the adl data term needs a retrieved kernel; call set_kernel first")
            return F.l1_loss(fake, apply_kernel(hr, self.kernel, s))
        raise ValueError(f"unknown data term {term!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(LR), 1) + BCE(D(G(HR)), 0): L_F of eq. (2)."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(G(HR)), 1): the non-saturating L_adv of eq. (2)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
