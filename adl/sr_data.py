"""Training pairs for the SR stage: where the LR side comes from, and aligned random patches.

An LR source produces, for every HR training image, the LR image the SR network learns to
invert (paper Table 2):

  bicubic              B(HR): the "Bicubic" row (k0 through the shared degradation operator)
  kernel:{k0..k4|K.npy}(HR ∗ k)↓s: the "Oracle" row
  downsampler:PATH     G(HR) from a trained downsampler (applied twice at ×4): the "Proposed" row
  pairs:DIR            LR files matched to the HR files by name
  shards:DIR           (LR, HR) patch pairs from ``adl generate`` shards (no --hr needed)

LR images made here come from the same functions as ``adl degrade`` and ``adl downsample``
(adl.degradation.degrade, adl.downsampling.downsample_image), so files on disk and pairs made
on the fly are identical. Every LR image is made once, up front, and held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from adl.atomic import file_sha256
from adl.degradation import crop_to_scale, degrade
from adl.errors import AdlError
from adl.imageio import list_images, pair_by_stem, read_image
from adl.progress import progress
from adl.shards import read_manifest

SR_STREAM = 2  # keeps SR patch draws independent of the downsampler's HR/LR streams
SOURCE_KINDS = ("bicubic", "kernel", "downsampler", "pairs", "shards")


@dataclass(frozen=True)
class LRSource:
    kind: str
    argument: str = ""

    @classmethod
    def parse(cls, spec: str) -> "LRSource":
        kind, _, argument = spec.partition(":")
        if kind not in SOURCE_KINDS:
            raise AdlError(f"--lr-source {spec}: unknown source; use bicubic, kernel:{{k0..k4|K.npy}}, "
                           f"downsampler:PATH, pairs:DIR or shards:DIR")
        if (kind == "bicubic") != (argument == ""):
            raise AdlError(f"--lr-source {spec}: " + ("bicubic takes no argument" if kind == "bicubic"
                                                       else f"{kind}: needs an argument, e.g. {kind}:PATH"))
        return cls(kind, argument)

    def fingerprint(self) -> str:
        """What identifies the LR data beyond the spec string: the file contents it depends on."""
        if self.kind == "downsampler" or (self.kind == "kernel" and Path(self.argument).is_file()):
            path = Path(self.argument)
            path = path / "checkpoint.pt" if path.is_dir() else path
            return file_sha256(path) if path.is_file() else ""
        if self.kind == "pairs":
            from adl.runs import data_fingerprint

            return data_fingerprint(list_images(self.argument, what="--lr-source pairs:"))
        if self.kind == "shards":
            from adl.shards import MANIFEST

            manifest = Path(self.argument) / MANIFEST
            return file_sha256(manifest) if manifest.is_file() else ""
        return ""


def make_lr_images(source: LRSource, hr_paths: Sequence[Path], hr_images: Sequence[np.ndarray], scale: int,
                   device: torch.device) -> list[np.ndarray]:
    """The LR partner of each HR image (each HR image is used cropped to a multiple of ``scale``)."""
    if source.kind in ("bicubic", "kernel"):
        from adl.kernels import resolve_kernel

        kernel = resolve_kernel("k0" if source.kind == "bicubic" else source.argument, scale)
        return [degrade(hr, kernel, scale, device)
                for hr in progress(hr_images, desc=f"LR ({source.kind})", unit="img", leave=False)]
    if source.kind == "downsampler":
        from adl.downsampling import downsample_image, load_downsampler

        model, _ = load_downsampler(source.argument, device, option="--lr-source downsampler:")
        return [downsample_image(model, hr, scale, device)
                for hr in progress(hr_images, desc="LR (downsampler)", unit="img", leave=False)]
    pairs = pair_by_stem(list(hr_paths), list_images(source.argument, what="--lr-source pairs:"),
                         "--hr", f"--lr-source pairs:{source.argument}")
    lr_images = []
    for (hr_path, lr_path), hr in zip(pairs, hr_images):
        lr = read_image(lr_path)
        check_pair(hr, lr, scale, hr_path, lr_path)
        lr_images.append(lr)
    return lr_images


def check_pair(hr: np.ndarray, lr: np.ndarray, scale: int, hr_path, lr_path) -> None:
    want = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != want:
        raise AdlError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not match HR {hr_path} "
                       f"({hr.shape[1]}x{hr.shape[0]}), which needs {want[1]}x{want[0]} at ×{scale}")


def augment(lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips and 90° rotation (the 8 dihedral transforms), applied to both sides alike."""
    if rng.random() < 0.5:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if rng.random() < 0.5:
        lr, hr = lr[::-1], hr[::-1]
    if rng.random() < 0.5:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


class PairedPatches(Dataset):
    """Item ``i``: an aligned (LR, HR) patch pair, a pure function of (seed, i), as uint8 CHW."""

    def __init__(self, lr_images, hr_images, lr_patch: int, scale: int, seed: int, flips: bool = True):
        self.lr_images, self.hr_images = lr_images, [crop_to_scale(h, scale) for h in hr_images]
        self.lr_patch, self.scale, self.seed, self.flips = lr_patch, scale, seed, flips

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, SR_STREAM, index])
        k = rng.integers(len(self.lr_images))
        lr_img, hr_img = self.lr_images[k], self.hr_images[k]
        p, s = self.lr_patch, self.scale
        y = rng.integers(lr_img.shape[0] - p + 1)
        x = rng.integers(lr_img.shape[1] - p + 1)
        lr = lr_img[y : y + p, x : x + p]
        hr = hr_img[s * y : s * (y + p), s * x : s * (x + p)]
        if self.flips:
            lr, hr = augment(lr, hr, rng)
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))))


class ShardPatches(Dataset):
    """Like PairedPatches, but drawing from the stored pairs of a shard directory.

    Item ``i`` picks a stored pair and a crop inside it from (seed, i), so resuming stays exact;
    the stored patch may be larger than the training patch.
    """

    def __init__(self, shard_dir: str, lr_patch: int, scale: int, seed: int, flips: bool = True):
        self.shards = ShardDataset(shard_dir)
        if self.shards.scale != scale:
            raise AdlError(f"--lr-source shards:{shard_dir}: shards are ×{self.shards.scale}, this run is ×{scale}")
        stored = self.shards.manifest["options"]["patch"] // scale
        if stored < lr_patch:
            raise AdlError(f"--hr-patch {lr_patch * scale}: larger than the {stored * scale} patches stored in "
                           f"{shard_dir}; lower --hr-patch")
        if len(self.shards) == 0:
            raise AdlError(f"--lr-source shards:{shard_dir}: no samples")
        self.lr_patch, self.scale, self.seed, self.flips, self.stored = lr_patch, scale, seed, flips, stored

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, SR_STREAM, index])
        lr_img, hr_img = self.shards.raw(int(rng.integers(len(self.shards))))
        p, s = self.lr_patch, self.scale
        y, x = rng.integers(self.stored - p + 1), rng.integers(self.stored - p + 1)
        lr, hr = lr_img[y : y + p, x : x + p], hr_img[s * y : s * (y + p), s * x : s * (x + p)]
        if self.flips:
            lr, hr = augment(lr, hr, rng)
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))))


class ShardDataset(Dataset):
    """(lr, hr) float32 CHW tensors in [0, 1] from a shard directory.

    HDF5 files are opened lazily, in whichever process reads them, so the dataset can be handed
    to DataLoader workers (an h5py handle must not cross a fork). ``flips`` applies one random
    flip/rotation to both sides alike. ``as_dict`` returns BasicSR's paired-dataset items instead:
    ``{"lq", "gt", "lq_path", "gt_path"}``, the paths naming the HDF5 dataset row the pixels come
    from (``SHARD#lr/ROW``), since a patch has no file of its own.
    """

    def __init__(self, shard_dir: str | Path, flips: bool = False, as_dict: bool = False):
        self.shard_dir = Path(shard_dir)
        self.manifest = read_manifest(shard_dir)
        if self.manifest["options"].get("format", "h5") != "h5" or self.manifest["options"].get("full_images"):
            raise AdlError(f"{shard_dir}: ShardDataset reads patch shards (h5), not {self.manifest['options'].get('format')}"
                           f" output or full images")
        self.scale = int(self.manifest["scale"])
        self.files = [e["file"] for e in self.manifest["shards"]]
        counts = [e["samples"] for e in self.manifest["shards"]]
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.flips, self.as_dict = flips, as_dict
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _file(self, shard: int) -> h5py.File:
        if self._pid != os.getpid():  # forked into a worker: the parent's handles are not ours
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            path = self.shard_dir / self.files[shard]
            try:
                self._handles[shard] = h5py.File(path, "r")
            except OSError as exc:
                raise AdlError(f"{path}: not a readable shard ({exc}); run adl verify-shards") from None
        return self._handles[shard]

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.starts, index, side="right") - 1)
        return shard, index - int(self.starts[shard])

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored uint8 (lr, hr) HWC arrays of sample ``index``."""
        shard, row = self._locate(index)
        f = self._file(shard)
        try:
            return f["lr"][row], f["hr"][row]
        except (OSError, KeyError) as exc:
            raise AdlError(f"{self.shard_dir / self.files[shard]}: unreadable sample {row} ({type(exc).__name__}); "
                           f"run adl verify-shards") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | dict:
        lr, hr = self.raw(index)
        if self.flips:
            # torch's RNG: DataLoader seeds it per worker and per epoch, so flips vary between epochs
            # yet repeat under torch.manual_seed.
            lr, hr = augment(lr, hr, np.random.default_rng(int(torch.randint(0, 2**62, ()))))
        lq = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div_(255)
        gt = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).float().div_(255)
        if not self.as_dict:
            return lq, gt
        shard, row = self._locate(index)
        where = self.shard_dir / self.files[shard]
        return {"lq": lq, "gt": gt, "lq_path": f"{where}#lr/{row}", "gt_path": f"{where}#hr/{row}"}
