"""A diagnostic downsampler: one learnable K×K kernel, applied as the degradation operator is.

Not the paper's G. It has exactly the degrees of freedom of a blur kernel, so training it under
Algorithm 1 asks one question: do the adversarial loss and the data term move a downsampler
towards the unknown kernel at all? If even this G does not learn the kernel, the adversarial
pipeline (D, its inputs, the losses) is at fault, not the capacity or the schedule of the deep G.
"""

from __future__ import annotations

import torch
from torch import nn

from adl.degradation import apply_kernel
from adl.kernels import default_kernel_size


class LinearDownsampler(nn.Module):
    scale = 2

    def __init__(self, width: int = 0, size: int | None = None):
        """``width`` is accepted (and ignored) so that it builds from the same options as Downsampler."""
        super().__init__()
        size = default_kernel_size(self.scale) if size is None else size
        kernel = torch.zeros(size, size)
        middle = (size - self.scale) // 2
        # Starts where the deep G's average-pool skip starts it: the centred 2×2 box.
        kernel[middle : middle + self.scale, middle : middle + self.scale] = 1.0 / self.scale**2
        self.kernel = nn.Parameter(kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_kernel(x, self.kernel, self.scale)
