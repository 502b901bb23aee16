"""Scale arithmetic of the ×2 downsampler G, free of torch so that the ONNX Runtime path of
``adl generate`` starts without importing it."""

from __future__ import annotations

import math

from adl.errors import AdlError


def repetitions(scale: int) -> int:
    """How many times G runs to reach ``scale`` (eq. 5): 1 at ×2, 2 at ×4."""
    n = int(round(math.log2(scale))) if scale > 0 else 0
    if scale < 2 or 2**n != scale:
        raise AdlError(f"--scale {scale}: a ×2 downsampler reaches only powers of two (2, 4, 8)")
    return n


def min_input_size(scale: int) -> int:
    """The least HR side G takes at ``scale``: each ×2 pass needs 4 pixels (its reflection pads need 3, then 2 after ↓2)."""
    return 2 * scale
