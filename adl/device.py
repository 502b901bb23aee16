"""Turning ``--device`` into a torch.device, without ever assuming CUDA is there."""

from __future__ import annotations

import torch

from adl.choices import DEVICE_CHOICES
from adl.errors import AdlError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when it is really usable, else CPU; an explicit ``cuda`` must be usable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible GPU"
            raise AdlError(f"--device {name}: CUDA is not available here ({build}); use --device cpu or --device auto")
        suffix = name[len("cuda:"):] if name.startswith("cuda:") else None
        if suffix is not None and not suffix.isdigit():  # torch.device("cuda:x") raises a bare RuntimeError
            raise AdlError(f"--device {name}: not a device; use cuda, cuda:N with N a GPU number, cpu or auto")
        index = None if suffix is None else int(suffix)
        if index is not None and index >= torch.cuda.device_count():
            raise AdlError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device(name)
    raise AdlError(f"--device {name}: unknown device; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
