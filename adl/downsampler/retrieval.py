"""Kernel retrieval, paper eq. (6): the kernel k̄ whose (HR ∗ k̄)↓s best matches given LR images.

k̄ = argmin_k Σ_i ‖(I_HR^i ∗ k)↓s − I_LR^i‖² is linear least squares in the K² kernel taps. We
accumulate the normal equations XᵀX k = Xᵀy over all images and solve once (method.md §5): that is
the exact minimiser of eq. (6), unlike averaging per-image solutions. Everything is float64,
because the system is badly conditioned (natural images carry little high-frequency energy) and
the authors report wrong kernels in float32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adl.degradation import check_pair, crop_to_scale
from adl.errors import AdlError
from adl.imageio import read_image
from adl.kernels import default_kernel_size, fits_scale
from adl.progress import progress

log = logging.getLogger(__name__)

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Taps this small are numerical noise of the solve, not kernel support (impl).
ZERO_THRESHOLD = 1e-5
# Bound on the patch matrix X of one strip, so a 1000x1000 crop with K = 40 fits any GPU.
STRIP_BYTES = 256 * 2**20

PathLike = str | os.PathLike




def luminance(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W → N×1×H×W luma with the BT.601 weights that the authors' retrieval uses."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _valid_range(lr_length: int, hr_length: int, size: int, scale: int) -> range:
    """LR indices whose K-wide HR window, starting at s*i - (K-s)/2, lies inside the HR image.

    Dropping the border positions keeps the replicate padding of apply_kernel out of the fit:
    padded pixels are not what the LR camera (or G) saw.
    """
    pad = (size - scale) // 2
    first = -(-pad // scale)  # ceil(pad / s)
    last = (hr_length - size + pad) // scale
    return range(first, min(last, lr_length - 1) + 1)


def equation_count(hr_shapes: Sequence[tuple[int, ...]], scale: int, size: int, crop: int = 1000) -> int:
    """How many LR pixels (equations) retrieval gets from HR images of these shapes, cropped as it crops them."""
    total = 0
    for shape in hr_shapes:
        h, w = (min(side, crop) for side in shape[:2])
        h, w = h - h % scale, w - w % scale
        total += len(_valid_range(h // scale, h, size, scale)) * len(_valid_range(w // scale, w, size, scale))
    return total


class NormalEquations:
    """Running XᵀX and Xᵀy for a K×K kernel at scale s, where X's rows are HR windows."""

    def __init__(self, size: int, scale: int, device: torch.device | str = "cpu") -> None:
        if size < scale or not fits_scale(size, scale):
            raise AdlError(
                f"kernel size {size}: does not fit scale {scale}; "
                f"use a size of at least {scale} with the parity of the scale (e.g. {default_kernel_size(scale)})"
            )
        self.size = size
        self.scale = scale
        self.device = torch.device(device)
        self.gram = torch.zeros(size * size, size * size, dtype=torch.float64, device=self.device)
        self.rhs = torch.zeros(size * size, dtype=torch.float64, device=self.device)
        self.rows = 0

    def add(self, hr_y: torch.Tensor, lr_y: torch.Tensor) -> None:
        """Add one HR luminance (H×W, multiples of s) and its target LR luminance (H/s × W/s)."""
        s, k = self.scale, self.size
        hr_h, hr_w = hr_y.shape
        if hr_h % s or hr_w % s or tuple(lr_y.shape) != (hr_h // s, hr_w // s):
            raise ValueError(f"NormalEquations.add: HR {hr_h}x{hr_w} and LR {tuple(lr_y.shape)} do not match scale {s}")
        rows = _valid_range(hr_h // s, hr_h, k, s)
        cols = _valid_range(hr_w // s, hr_w, k, s)
        if not rows or not cols:
            return
        hr = hr_y.to(self.device, torch.float64)
        lr = lr_y.to(self.device, torch.float64)
        pad = (k - s) // 2
        col_start = s * cols.start - pad
        col_stop = s * cols[-1] - pad + k
        strip_rows = max(1, STRIP_BYTES // (len(cols) * k * k * 8))
        for first in range(rows.start, rows.stop, strip_rows):
            last = min(first + strip_rows, rows.stop) - 1
            window = hr[s * first - pad : s * last - pad + k, col_start:col_stop]
            # unfold orders each window's taps channel, row, column: the kernel's own flattening.
            patches = F.unfold(window[None, None], kernel_size=k, stride=s)[0]  # K² × positions
            target = lr[first : last + 1, cols.start : cols.stop].reshape(-1)
            self.gram += patches @ patches.T
            self.rhs += patches @ target
            self.rows += target.numel()

    def solve(self) -> np.ndarray:
        """The least-squares kernel, cleaned and normalised as the authors do (method.md §5)."""
        unknowns = self.size * self.size
        advice = "use more or larger images, or a smaller kernel size"
        if self.rows < unknowns:
            raise AdlError(
                f"kernel retrieval: {self.rows} LR pixels cannot determine a {self.size}x{self.size} kernel; {advice}"
            )
        gram, rhs = self.gram.cpu(), self.rhs.cpu()
        # A solve "succeeds" on a numerically singular system and returns noise. No Cholesky pivot
        # is below the smallest eigenvalue, so a pivot at roundoff level (or a failed
        # factorisation) proves that the images leave some direction of the kernel undetermined.
        factor, info = torch.linalg.cholesky_ex(gram)
        pivots = factor.diagonal() ** 2
        roundoff = torch.finfo(torch.float64).eps * unknowns * gram.diagonal().max()
        if info != 0 or not pivots.min() > roundoff:
            raise AdlError(f"kernel retrieval: the images do not determine the kernel (singular system); {advice}")
        kernel = torch.cholesky_solve(rhs[:, None], factor)[:, 0].numpy().reshape(self.size, self.size)
        kernel[np.abs(kernel) <= ZERO_THRESHOLD] = 0.0
        total = kernel.sum()
        if not np.isfinite(total) or total <= 0:
            raise AdlError(f"kernel retrieval: the fitted kernel sums to {total:g} and cannot be normalised; {advice}")
        return kernel / total


def _accumulate(
    image_pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], count: int, scale: int, size: int,
    device: torch.device | str, what: str,
) -> np.ndarray:
    """Fit one kernel to (HR, LR) pairs of 1×3×H×W float tensors in [0, 1]."""
    equations = NormalEquations(size, scale, device)
    for hr, lr in progress(image_pairs, total=count, desc=f"retrieving kernel ({what})", unit="img"):
        equations.add(luminance(hr.double())[0, 0], luminance(lr.double())[0, 0])
    log.info("kernel retrieval: %d LR pixels from %d images, %dx%d kernel", equations.rows, count, size, size)
    return equations.solve()


def _crop_hr(image: np.ndarray, crop: int, scale: int) -> np.ndarray:
    return crop_to_scale(image[:crop, :crop], scale)


def _unit_tensor(image: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """HxWx3 uint8 → 1x3xHxW float64 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].double() / 255.0


def retrieve_from_pairs(
    pairs: Sequence[tuple[PathLike, PathLike]],
    scale: int,
    size: int,
    max_images: int | None = None,
    crop: int = 1000,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The kernel that maps each HR file to its paired LR file, from their top-left ``crop`` regions."""
    chosen = list(pairs)[:max_images]

    def load() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for hr_path, lr_path in chosen:
            full_hr = crop_to_scale(read_image(hr_path), scale)
            lr = read_image(lr_path)
            check_pair(full_hr, lr, scale, hr_path, lr_path)
            hr = _crop_hr(full_hr, crop, scale)
            lr = lr[: hr.shape[0] // scale, : hr.shape[1] // scale]
            yield _unit_tensor(hr, device), _unit_tensor(lr, device)

    return _accumulate(load(), len(chosen), scale, size, device, "image pairs")


def retrieve_from_model(
    apply_fn: Callable[[torch.Tensor], torch.Tensor],
    hr_images: Sequence[np.ndarray],
    scale: int,
    size: int,
    max_images: int | None = None,
    crop: int = 1000,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The kernel that best imitates a downsampler ``apply_fn`` on ``hr_images`` (paper eq. 6).

    ``apply_fn`` maps a 1×3×H×W float32 tensor in [0, 1] on ``device`` to 1×3×(H/s)×(W/s) in [0, 1].
    """
    chosen = list(hr_images)[:max_images]

    def run() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for image in chosen:
            hr = _unit_tensor(_crop_hr(image, crop, scale), device)
            with torch.no_grad():
                lr = apply_fn(hr.float())
            expected = (1, 3, hr.shape[2] // scale, hr.shape[3] // scale)
            if tuple(lr.shape) != expected:
                raise ValueError(f"retrieve_from_model: downsampler returned {tuple(lr.shape)}, expected {expected}")
            yield hr, lr

    return _accumulate(run(), len(chosen), scale, size, device, "downsampler")


def retrieve_kernel_file(output: str | os.PathLike, hr: str, scale: int, size: int | None, images: int,
                         device: torch.device, lr: str | None = None, checkpoint: str | None = None) -> Path:
    """`adl retrieve-kernel`: eq. (6) on HR→LR pairs matched by name (``lr``) or on G(HR) of a
    downsampler (``checkpoint``), saved as ``output`` (.npy) with a picture beside it; returns the picture."""
    from adl.atomic import atomic_path
    from adl.errors import UsageError
    from adl.imageio import list_images, pair_by_stem, write_png
    from adl.kernels import kernel_picture

    output = Path(output)
    if output.suffix.lower() != ".npy":  # np.save would append .npy to the temporary and strand it
        raise AdlError(f"--output {output}: must name a .npy file (a .png picture is written beside it)")
    size = size or default_kernel_size(scale)
    if not fits_scale(size, scale):
        raise UsageError(f"--size {size}: must be {'even' if scale % 2 == 0 else 'odd'} at scale {scale}")
    hr_paths = list_images(hr, what="--hr")
    if lr:
        pairs = pair_by_stem(hr_paths, list_images(lr, what="--lr"), "--hr", "--lr")
        kernel = retrieve_from_pairs(pairs, scale, size, images, device=device)
    else:
        from adl.downsampler.apply import UnitRangeDownsampler, load_downsampler
        from adl.downsampler.patches import load_images
        from adl.downsampler.scales import min_input_size

        model, _ = load_downsampler(checkpoint, device)
        loaded = load_images(hr_paths[:images], min_input_size(scale), "HR images", "--scale")
        kernel = retrieve_from_model(UnitRangeDownsampler(model, scale), loaded, scale, size, images, device=device)
    with atomic_path(output) as tmp:
        np.save(tmp, kernel)
    picture = output.with_suffix(".png")
    write_png(picture, kernel_picture(kernel))
    return picture
