"""The speed levers of training and inference, chosen once per run (docs/performance.md).

``--precision fp32`` is the exact path: fp32 convolutions without TF32, eager modules, the
multi-tensor Adam and batches assembled on the host. ``--precision auto`` (the default) keeps
that path on CPU, where it is the bit-reproducible reference (and where channels_last made G
14 % slower; bf16 helps only CPUs with native bf16), and on CUDA turns on low-precision
autocast, channels_last, fused Adam and torch.compile. TF32 stays off everywhere: the heavy
convolutions run in bf16/fp16 on the fast path, and the small fp32 ones left (the data terms,
retrieval) keep full precision.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from torch import nn

from adl.choices import COMPILE_CHOICES, INFER_PRECISIONS, TRAIN_PRECISIONS
from adl.errors import AdlError

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def exact_fp32() -> None:
    """No TF32 anywhere in this process: it would make fp32 results differ by ~1e-3 on CUDA.

    The legacy flags, not torch ≥ 2.9's ``fp32_precision``: with the new API set, torch 2.13's
    own ``torch.export`` (ONNX export) fails reading the legacy flag.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@dataclass(frozen=True)
class FastPath:
    """What one run does for speed; ``describe`` goes into its records."""

    device: torch.device
    precision: str  # fp32, bf16 or fp16: the autocast dtype of the networks
    channels_last: bool
    compile_mode: str | None  # None: eager; else a torch.compile mode
    fused_adam: bool

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES.get(self.precision)

    def autocast(self):
        """Autocast for the networks; a no-op context on the exact path."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device (and memory format) in place; returns it, uncompiled."""
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def compiled(self, module: nn.Module):
        """The callable to run ``module`` through; its state_dict stays the module's own."""
        if self.compile_mode is None:
            return module
        return torch.compile(module, mode=self.compile_mode)

    def step_begin(self) -> None:
        """Tell CUDA graph trees a new iteration starts, so the last one's outputs may be reused."""
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the networks' memory format (a gathered batch arrives channels_last-strided)."""
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def adam(self, params, lr: float, betas=(0.9, 0.999)) -> torch.optim.Adam:
        # fused and foreach Adam keep the same state_dict, so a run may resume under either.
        return torch.optim.Adam(params, lr=lr, betas=betas, **({"fused": True} if self.fused_adam else {}))

    def describe(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last,
                "compile": self.compile_mode or "off", "fused_adam": self.fused_adam}


def resolve_fast_path(precision: str, compile: str, device: torch.device, *, training: bool,
                      option: str = "--precision") -> FastPath:
    """Turn ``--precision`` and ``--compile`` into the levers for ``device``.

    ``auto`` means fp32 and eager on CPU; bf16 (training) or fp16 (inference, whose 10-bit
    mantissa keeps G(HR) within one 8-bit level) with every lever on CUDA.
    """
    choices = TRAIN_PRECISIONS if training else INFER_PRECISIONS
    if precision not in choices:
        raise AdlError(f"{option} {precision}: choose from {', '.join(choices)}")
    if compile not in COMPILE_CHOICES:
        raise AdlError(f"--compile {compile}: choose from {', '.join(COMPILE_CHOICES)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = ("bf16" if training else "fp16") if cuda else "fp32"
    if compile == "auto":
        compile = "on" if cuda and precision != "fp32" else "off"
    if compile == "cudagraphs" and not cuda:
        raise AdlError("--compile cudagraphs: CUDA graphs need a CUDA device; use --compile on or off")
    exact_fp32()
    fast = precision != "fp32"
    return FastPath(device=device, precision=precision, channels_last=fast and cuda,
                    compile_mode={"off": None, "on": "default", "cudagraphs": "reduce-overhead"}[compile],
                    fused_adam=fast and cuda)
