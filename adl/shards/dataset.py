"""Reading shards back: ``ShardDataset``, the public reader of an ``adl generate`` folder (torch).

Kept apart from adl.shards.format so that the writer processes, which load the format module,
never import torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from adl.errors import AdlError
from adl.shards.format import read_manifest


def augment(lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips and 90° rotation (the 8 dihedral transforms), applied to both sides alike."""
    if rng.random() < 0.5:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if rng.random() < 0.5:
        lr, hr = lr[::-1], hr[::-1]
    if rng.random() < 0.5:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


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
