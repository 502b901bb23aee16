"""The (IDown, IHR) shard format (docs/shards.md): writing, verifying and loading.

SHARD_DIR/shard-00000.h5 …   hr (N,P,P,3) uint8, lr (N,P/s,P/s,3) uint8, source (N,) str, offset (N,2) int32
SHARD_DIR/manifest.json      written last, atomically: the directory is complete iff it exists

Each shard is written to a hidden temporary name and renamed when complete, so a shard file
under its final name is always whole. Layout choice (measured in benchmarks/shard_layout.py):
one sample per chunk; gzip level 1 by default, lzf or none on request (``compression`` in the
manifest records which).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from adl.atomic import atomic_path, file_sha256
from adl.errors import AdlError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_SAMPLES = 1
COMPRESSIONS = ("gzip", "lzf", "none")
COMPRESSION, COMPRESSION_LEVEL = "gzip", 1


def compression_record(compression: str, level: int | None) -> dict:
    """How hr and lr are compressed, as the manifest records it (a level only for gzip)."""
    return {"filter": compression, "level": level if compression == "gzip" else None}


def _filter_arguments(compression: str, level: int | None) -> dict:
    if compression == "none":
        return {}
    return {"compression": compression, "compression_opts": level if compression == "gzip" else None}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def write_shard(path: Path, hr: np.ndarray, lr: np.ndarray, sources: Sequence[str], offsets: np.ndarray,
                scale: int, model_sha256: str, compression: str = COMPRESSION,
                level: int | None = COMPRESSION_LEVEL) -> dict:
    """Write one complete shard atomically; returns its manifest entry."""
    filters = _filter_arguments(compression, level)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            for name, data in (("hr", hr), ("lr", lr)):
                f.create_dataset(name, data=data, chunks=(CHUNK_SAMPLES, *data.shape[1:]), track_times=False,
                                 **filters)
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
            if "compression" in manifest:
                want = manifest["compression"]
                for name in ("hr", "lr"):
                    found = compression_record(f[name].compression or "none", f[name].compression_opts)
                    if found != want:
                        raise AdlError(f"{path}: dataset {name} is compressed as {found}, the manifest says {want}; "
                                       f"regenerate it")
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


def write_manifest(shard_dir: Path, manifest: dict) -> None:
    with atomic_path(shard_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
