"""Tiled SR inference that equals whole-image inference (issue 3: full-size images and photos).

EDSR and RRDB have no global normalisation, so an output pixel depends only on LR pixels within
the model's ``receptive_radius``. Each tile is therefore run with that much real context on
every side; where the context would leave the image it is clipped at the border, and the
network's own zero padding then sees exactly what it sees in whole-image inference. The centre
of each result is pasted into the output, which matches the whole image up to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adl.choices import DEFAULT_TILE
from adl.degradation import to_tensor, to_uint8
from adl.progress import progress


def spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(start, end) of each tile core along one axis, with the (start, end) of its context crop."""
    out = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        out.append((start, end, max(start - margin, 0), min(end + margin, length)))
    return out


def upscale_tiled(
    model: nn.Module, lr: torch.Tensor, scale: int, tile: int = DEFAULT_TILE, margin: int | None = None
) -> torch.Tensor:
    """Super-resolve a 1×3×h×w tensor in [0, 1] tile by tile → 1×3×(scale·h)×(scale·w).

    Runs on ``lr``'s device, without gradients. ``margin`` (LR pixels of context per side)
    defaults to ``model.receptive_radius``; a smaller one gives seams.
    """
    if lr.dim() != 4 or lr.shape[0] != 1:
        raise ValueError(f"expected a 1×C×h×w tensor, got shape {tuple(lr.shape)}")
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    margin = model.receptive_radius if margin is None else margin
    h, w = lr.shape[-2:]
    rows, cols = spans(h, tile, margin), spans(w, tile, margin)
    with torch.no_grad():
        # When every crop is already the whole image (small images, or RRDB's wide radius),
        # tiling would only repeat the same work.
        if all(c0 == 0 and c1 == h for *_, c0, c1 in rows) and all(c0 == 0 and c1 == w for *_, c0, c1 in cols):
            return model(lr)
        out: torch.Tensor | None = None
        tiles = [(r, c) for r in rows for c in cols]
        for (y0, y1, cy0, cy1), (x0, x1, cx0, cx1) in progress(tiles, desc="tiles", unit="tile", leave=False):
            sr = model(lr[..., cy0:cy1, cx0:cx1])
            if sr.shape[-2:] != (scale * (cy1 - cy0), scale * (cx1 - cx0)):
                raise ValueError(f"model output {tuple(sr.shape)} is not ×{scale} of its input tile")
            if out is None:
                out = sr.new_empty((1, sr.shape[1], scale * h, scale * w))
            oy, ox = scale * (y0 - cy0), scale * (x0 - cx0)
            out[..., scale * y0 : scale * y1, scale * x0 : scale * x1] = sr[
                ..., oy : oy + scale * (y1 - y0), ox : ox + scale * (x1 - x0)
            ]
    assert out is not None
    return out


def upscale_image(
    model: nn.Module, image: np.ndarray, scale: int, device: torch.device | str = "cpu", tile: int = DEFAULT_TILE
) -> np.ndarray:
    """HxWx3 uint8 → (scale·H)x(scale·W)x3 uint8, rounded half to even and clipped to 0..255."""
    lr = to_tensor(image, device) / 255.0
    return to_uint8(upscale_tiled(model, lr, scale, tile=tile) * 255.0)
