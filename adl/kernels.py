"""Degradation kernels: the synthetic set k0–k4 and user kernel files (method.md §1).

A kernel is a 2-D float64 array that sums to 1; rows run down (y), columns run right (x).
A KxK kernel fits scale s only when (K - s) is even, so that its centre lands on the LR
sampling grid (LR pixel i sits at HR coordinate s*i + (s-1)/2).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from adl.choices import KERNEL_NAMES, SCALES
from adl.errors import AdlError

log = logging.getLogger(__name__)


# (sigma1, sigma2, theta) at x2; x4 doubles the sigmas and the support (method.md §1).
_GAUSSIANS = {
    "k1": (1.2, 1.2, 0.0),
    "k2": (2.0, 2.0, 0.0),
    "k3": (2.0, 0.8, math.pi / 4),
    "k4": (2.2, 1.2, 2 * math.pi / 3),
}


def fits_scale(size: int, scale: int) -> bool:
    return (size - scale) % 2 == 0


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel, the one PIL and torch use for bicubic resizing."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def bicubic_kernel(scale: int) -> np.ndarray:
    """Antialiased bicubic downscaling by ``scale`` as a (4s)x(4s) separable kernel."""
    taps = 4 * scale
    offsets = np.arange(taps) - (taps - 1) / 2
    w = cubic(offsets / scale)
    w /= w.sum()
    return np.outer(w, w)


def gaussian_kernel(size: int, sigma1: float, sigma2: float, theta: float) -> np.ndarray:
    """Anisotropic Gaussian exp(-(u²/σ1² + v²/σ2²)/2) with u along angle theta from the x axis."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - c
    u = x * math.cos(theta) + y * math.sin(theta)
    v = -x * math.sin(theta) + y * math.cos(theta)
    k = np.exp(-0.5 * (u**2 / sigma1**2 + v**2 / sigma2**2))
    return k / k.sum()


def synthetic_kernel(name: str, scale: int) -> np.ndarray:
    if scale not in SCALES:
        raise AdlError(f"--scale {scale}: synthetic kernels exist for scales {SCALES}")
    if name == "k0":
        return bicubic_kernel(scale)
    if name not in _GAUSSIANS:
        raise AdlError(f"kernel {name!r}: unknown; use one of {', '.join(KERNEL_NAMES)} or a path to a .npy file")
    s1, s2, theta = _GAUSSIANS[name]
    factor = scale // 2
    return gaussian_kernel(20 * factor, s1 * factor, s2 * factor, theta)


def validate_kernel(kernel: np.ndarray, scale: int, source: str) -> np.ndarray:
    """Check a kernel against the rules of method.md §1 and return it as float64 summing to 1."""
    k = np.asarray(kernel)
    if k.ndim != 2:
        raise AdlError(f"{source}: kernel must be 2-D, got shape {k.shape}")
    if not np.issubdtype(k.dtype, np.number) or np.issubdtype(k.dtype, np.complexfloating):
        raise AdlError(f"{source}: kernel must hold real numbers, got dtype {k.dtype}")
    k = k.astype(np.float64)
    if not np.all(np.isfinite(k)):
        raise AdlError(f"{source}: kernel holds NaN or infinite values")
    for axis, n in zip(("height", "width"), k.shape):
        if not fits_scale(n, scale):
            raise AdlError(
                f"{source}: kernel {axis} {n} does not fit scale {scale}; "
                f"it must be {'even' if scale % 2 == 0 else 'odd'} so its centre lands on the LR grid"
            )
    total = k.sum()
    if total <= 0:
        raise AdlError(f"{source}: kernel sums to {total:g}; it must sum to a positive value (ideally 1)")
    if abs(total - 1) > 1e-6:
        log.warning("%s: kernel sums to %.6g; renormalised to 1", source, total)
        k = k / total
    return k


def load_kernel(path: str | os.PathLike, scale: int) -> np.ndarray:
    path = Path(path)
    try:
        k = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise AdlError(f"{path}: no such kernel file") from None
    except (ValueError, OSError, EOFError) as exc:
        if "pickle" in str(exc):  # numpy's text here advises loading it unsafely; adl never unpickles
            raise AdlError(f"{path}: not a numeric .npy array (pickled objects, or not .npy at all); "
                           f"save the kernel with numpy.save") from None
        raise AdlError(f"{path}: not a readable .npy kernel ({exc})") from None
    return validate_kernel(k, scale, str(path))


def resolve_kernel(spec: str, scale: int) -> np.ndarray:
    """``k0``..``k4`` names a synthetic kernel; anything else is a path to a .npy file."""
    if spec in KERNEL_NAMES:
        return synthetic_kernel(spec, scale)
    if not spec.endswith(".npy") and not Path(spec).exists():
        raise AdlError(f"--kernel {spec}: not a kernel name ({', '.join(KERNEL_NAMES)}) nor an existing .npy file")
    return load_kernel(spec, scale)


def kernel_picture(kernel: np.ndarray, cell: int = 16) -> np.ndarray:
    """An RGB picture of a kernel: green for positive taps, red for negative, scaled to the peak."""
    k = np.asarray(kernel, dtype=np.float64)
    peak = np.abs(k).max() or 1.0
    rgb = np.zeros(k.shape + (3,), dtype=np.float64)
    rgb[..., 1] = np.clip(k, 0, None) / peak
    rgb[..., 0] = np.clip(-k, 0, None) / peak
    img = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
    return np.asarray(img.resize((k.shape[1] * cell, k.shape[0] * cell), Image.NEAREST))


def default_kernel_size(scale: int) -> int:
    return 10 * scale


def write_kernels(out: str | os.PathLike, scale: int) -> None:
    """k0–k4 at ``scale`` as ``.npy`` (float64) with a picture of each, into ``out``."""
    from adl.atomic import atomic_path
    from adl.imageio import write_png

    out = Path(out)
    for name in KERNEL_NAMES:
        k = synthetic_kernel(name, scale)
        with atomic_path(out / f"{name}.npy") as tmp:
            np.save(tmp, k)
        write_png(out / f"{name}.png", kernel_picture(k))
