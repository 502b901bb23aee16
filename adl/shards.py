"""The (IDown, IHR) shard format (docs/shards.md): writing, verifying and loading.

SHARD_DIR/shard-00000.h5 …   hr (N,P,P,3) uint8, lr (N,P/s,P/s,3) uint8, source (N,) str, offset (N,2) int32
SHARD_DIR/manifest.json      written last, atomically: the directory is complete iff it exists

Each shard is written to a hidden temporary name and renamed when complete, so a shard file
under its final name is always whole. Layout choice (measured in benchmarks/shard_layout.py):
one sample per chunk, gzip level 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from adl.atomic import atomic_path, file_sha256
from adl.errors import AdlError
from adl.sr_data import augment

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_SAMPLES = 1
COMPRESSION, COMPRESSION_LEVEL = "gzip", 1


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def write_shard(path: Path, hr: np.ndarray, lr: np.ndarray, sources: Sequence[str], offsets: np.ndarray,
                scale: int, model_sha256: str) -> dict:
    """Write one complete shard atomically; returns its manifest entry."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            for name, data in (("hr", hr), ("lr", lr)):
                f.create_dataset(name, data=data, chunks=(CHUNK_SAMPLES, *data.shape[1:]), compression=COMPRESSION,
                                 compression_opts=COMPRESSION_LEVEL, track_times=False)
            f.create_dataset("source", data=np.array(sources, dtype=object), dtype=h5py.string_dtype(),
                             track_times=False)
            f.create_dataset("offset", data=offsets.astype(np.int32), track_times=False)
            f.attrs["scale"] = scale
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["model_sha256"] = model_sha256
    return {"file": path.name, "samples": int(len(hr)), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def read_manifest(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise AdlError(f"{shard_dir}: no {MANIFEST}, so generation did not finish; rerun the same adl generate command")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdlError(f"{path}: unreadable ({exc}); rerun adl generate into a new folder") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise AdlError(f"{path}: shard format {manifest.get('format_version')!r}; this adl reads format {FORMAT_VERSION}")
    return manifest


def check_shard(path: Path, entry: dict, manifest: dict, checksum: bool = True) -> None:
    """Raise AdlError naming ``path`` unless it matches its manifest entry in bytes, shapes and dtypes."""
    if not path.is_file():
        raise AdlError(f"{path}: missing; rerun adl generate")
    if path.stat().st_size != entry["bytes"]:
        raise AdlError(f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}; regenerate it")
    if checksum and file_sha256(path) != entry["sha256"]:
        raise AdlError(f"{path}: sha256 differs from the manifest; the file is corrupt, regenerate it")
    n, s = entry["samples"], manifest["scale"]
    try:
        with h5py.File(path, "r") as f:
            hr = f["hr"]
            p = hr.shape[1] if manifest["options"]["patch"] is None else manifest["options"]["patch"]
            want = {"hr": (n, p, p, 3), "lr": (n, p // s, p // s, 3), "offset": (n, 2), "source": (n,)}
            for name, shape in want.items():
                if f[name].shape != shape:
                    raise AdlError(f"{path}: dataset {name} has shape {f[name].shape}, expected {shape}")
            for name in ("hr", "lr"):
                if f[name].dtype != np.uint8:
                    raise AdlError(f"{path}: dataset {name} is {f[name].dtype}, expected uint8")
            if int(f.attrs["scale"]) != s or int(f.attrs["format_version"]) != FORMAT_VERSION:
                raise AdlError(f"{path}: attributes (scale, format_version) disagree with the manifest")
    except (OSError, KeyError) as exc:
        raise AdlError(f"{path}: not a readable shard ({type(exc).__name__}); regenerate it") from None


def verify_shards(shard_dir: str | Path) -> dict:
    """Check every shard against the manifest; returns the manifest if all is well."""
    manifest = read_manifest(shard_dir)
    for entry in manifest["shards"]:
        check_shard(Path(shard_dir) / entry["file"], entry, manifest)
    total = sum(e["samples"] for e in manifest["shards"])
    if total != manifest["total_samples"]:
        raise AdlError(f"{Path(shard_dir) / MANIFEST}: shards hold {total} samples, the total says "
                       f"{manifest['total_samples']}")
    return manifest


class ShardDataset(Dataset):
    """(lr, hr) float32 CHW tensors in [0, 1] from a shard directory.

    HDF5 files are opened lazily, in whichever process reads them, so the dataset can be handed
    to DataLoader workers (an h5py handle must not cross a fork). ``flips`` applies one random
    flip/rotation to both sides alike.
    """

    def __init__(self, shard_dir: str | Path, flips: bool = False):
        self.shard_dir = Path(shard_dir)
        self.manifest = read_manifest(shard_dir)
        if self.manifest["options"].get("format", "h5") != "h5" or self.manifest["options"].get("full_images"):
            raise AdlError(f"{shard_dir}: ShardDataset reads patch shards (h5), not {self.manifest['options'].get('format')}"
                           f" output or full images")
        self.scale = int(self.manifest["scale"])
        self.files = [e["file"] for e in self.manifest["shards"]]
        counts = [e["samples"] for e in self.manifest["shards"]]
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.flips = flips
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

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored uint8 (lr, hr) HWC arrays of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.starts, index, side="right") - 1)
        row = index - int(self.starts[shard])
        f = self._file(shard)
        try:
            return f["lr"][row], f["hr"][row]
        except (OSError, KeyError) as exc:
            raise AdlError(f"{self.shard_dir / self.files[shard]}: unreadable sample {row} ({type(exc).__name__}); "
                           f"run adl verify-shards") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.raw(index)
        if self.flips:
            # torch's RNG: DataLoader seeds it per worker and per epoch, so flips vary between epochs
            # yet repeat under torch.manual_seed.
            lr, hr = augment(lr, hr, np.random.default_rng(int(torch.randint(0, 2**62, ()))))
        return (torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div_(255),
                torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).float().div_(255))


def write_manifest(shard_dir: Path, manifest: dict) -> None:
    with atomic_path(shard_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
