"""The (IDown, IHR) shard format (docs/shards.md): writing, recording, verifying and loading.

SHARD_DIR/shard-00000.h5            hr (N,P,P,3) uint8, lr (N,P/s,P/s,3) uint8, source (N,) str, offset (N,2) int32
SHARD_DIR/shard-00000.record.json   written after the shard: its size, sha256, samples and options key
SHARD_DIR/manifest.json             written last, atomically: the directory is complete iff it exists

Each shard is written to a hidden temporary name and renamed when complete, then its record is
written the same way. A shard counts as done only if its record matches it, so a resumed run
never adopts a file that was damaged after it was written. Layout choice (measured in
benchmarks/shard_layout.py): one sample per chunk, gzip level 1 by default (lzf or none on
request; ``compression`` in the manifest records which), fletcher32 on every chunk so that a
damaged chunk fails at read time, not only against the manifest's hash.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from adl.atomic import atomic_path, file_sha256, write_text
from adl.errors import AdlError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no records, no fletcher32; read and verified all the same
MANIFEST = "manifest.json"
OPTIONS_FILE = "generate.json"  # the generation's settings; present from the start of a run
SCHEMA = Path(__file__).with_name("manifest.schema.json")
CHUNK_SAMPLES = 1
COMPRESSIONS = ("gzip", "lzf", "none")
COMPRESSION, COMPRESSION_LEVEL = "gzip", 1
SHARD_PATTERN = re.compile(r"^shard-\d{5,}\.h5$")


def compression_record(compression: str, level: int | None) -> dict:
    """How hr and lr are compressed, as the manifest records it (a level only for gzip)."""
    return {"filter": compression, "level": level if compression == "gzip" else None}


def _filter_arguments(compression: str, level: int | None) -> dict:
    if compression == "none":
        return {}
    return {"compression": compression, "compression_opts": level if compression == "gzip" else None}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def record_path(shard: Path) -> Path:
    return shard.with_name(shard.name.removesuffix(".h5") + ".record.json")


def write_shard(path: Path, hr: np.ndarray, lr: np.ndarray, sources: Sequence[str], offsets: np.ndarray,
                scale: int, model_sha256: str, options_key: str | None = None, compression: str = COMPRESSION,
                level: int | None = COMPRESSION_LEVEL) -> dict:
    """Write one complete shard atomically and then, given ``options_key``, its record; returns its manifest entry."""
    filters = _filter_arguments(compression, level)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            for name, data in (("hr", hr), ("lr", lr)):
                f.create_dataset(name, data=data, chunks=(CHUNK_SAMPLES, *data.shape[1:]), fletcher32=True,
                                 track_times=False, **filters)
            f.create_dataset("source", data=np.array(sources, dtype=object), dtype=h5py.string_dtype(),
                             track_times=False)
            # fletcher32 needs a chunked layout; one chunk holds the whole small array.
            f.create_dataset("offset", data=offsets.astype(np.int32), chunks=(max(1, len(offsets)), 2),
                             fletcher32=True, track_times=False)
            f.attrs["scale"] = scale
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["model_sha256"] = model_sha256
    entry = {"file": path.name, "samples": int(len(hr)), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    if options_key is not None:
        write_record(path, entry, options_key)
    return entry


# -- per-shard records ------------------------------------------------------------------------------
def write_record(shard: Path, entry: dict, options_key: str) -> None:
    """Mark ``shard`` done: called only after the shard itself was renamed into place."""
    write_text(record_path(shard), json.dumps({**entry, "options_key": options_key}, indent=1) + "\n")


def shard_against_record(shard: Path, options_key: str, samples: int) -> tuple[dict | None, str]:
    """(manifest entry, "") when ``shard`` matches its record, else (None, why not)."""
    try:
        record = json.loads(record_path(shard).read_text())
    except FileNotFoundError:
        return None, "no record that it was finished"
    except (OSError, ValueError):
        return None, "its record is unreadable"
    if not isinstance(record, dict) or record.get("options_key") != options_key:
        return None, "its record is from other settings"
    if record.get("file") != shard.name or record.get("samples") != samples:
        return None, "its record names another file or sample count"
    size = shard.stat().st_size
    if size != record.get("bytes"):
        return None, f"{size} bytes, its record says {record.get('bytes')}"
    if file_sha256(shard) != record.get("sha256"):
        return None, "sha256 differs from its record (the file changed after it was written)"
    return {k: record[k] for k in ("file", "samples", "bytes", "sha256")}, ""


# -- the manifest -----------------------------------------------------------------------------------
@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def _field(error) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    if error.validator == "required":  # the message names the missing key; the path stops at its parent
        missing = re.match(r"'([^']+)'", error.message)
        parts.append(f".{missing.group(1)}" if missing else "")
    return "".join(parts).lstrip(".") or "(top level)"


def manifest_problems(manifest) -> list[str]:
    """Each way ``manifest`` breaks the published schema (adl/shards/manifest.schema.json), one line each naming the field."""
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    lines = []
    for error in errors:
        field = _field(error)
        what = (f"is required" if error.validator == "required"
                else f"{error.message.splitlines()[0][:120]}")
        lines.append(f"{field}: {what}")
    return lines


def validate_manifest(manifest, path: Path) -> None:
    problems = manifest_problems(manifest)
    if problems:
        raise AdlError("\n".join(f"{path}: {line}" for line in problems)
                       + f"\n{path}: not a valid adl manifest; regenerate the folder with adl generate")


def read_manifest(shard_dir: str | Path) -> dict:
    folder = Path(shard_dir)
    path = folder / MANIFEST
    if not folder.exists():
        raise AdlError(f"{folder}: no such folder; give the --output folder of adl generate")
    if not folder.is_dir():
        raise AdlError(f"{folder}: is a file, not a folder; give the --output folder of adl generate")
    if not path.is_file():
        if (folder / OPTIONS_FILE).is_file():
            raise AdlError(f"{folder}: no {MANIFEST}, so generation did not finish; rerun the same adl generate command")
        raise AdlError(f"{folder}: not an adl generate folder (no {MANIFEST} or {OPTIONS_FILE}); give the --output "
                       f"folder of adl generate")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AdlError(f"{path}: unreadable ({exc}); rerun adl generate into a new folder") from None
    if isinstance(manifest, dict) and manifest.get("format_version", 1) not in READABLE_VERSIONS:
        raise AdlError(f"{path}: shard format {manifest.get('format_version')!r}; this adl reads formats "
                       f"{', '.join(map(str, READABLE_VERSIONS))}")
    validate_manifest(manifest, path)
    return manifest


def write_manifest(shard_dir: Path, manifest: dict) -> None:
    with atomic_path(shard_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


# -- verification -----------------------------------------------------------------------------------
def check_shard(path: Path, entry: dict, manifest: dict, checksum: bool = True, decode: bool = True) -> None:
    """Raise AdlError naming ``path`` unless it matches its manifest entry in bytes, shapes and dtypes
    and, with ``decode``, every dataset reads back whole (fletcher32 catches damaged chunks)."""
    if not path.is_file():
        raise AdlError(f"{path}: missing; rerun adl generate")
    if path.stat().st_size != entry["bytes"]:
        raise AdlError(f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}; regenerate it")
    if checksum and file_sha256(path) != entry["sha256"]:
        raise AdlError(f"{path}: sha256 differs from the manifest; the file is corrupt, regenerate it")
    n, s, version = entry["samples"], manifest["scale"], manifest["format_version"]
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
            if int(f.attrs["scale"]) != s or int(f.attrs["format_version"]) != version:
                raise AdlError(f"{path}: attributes (scale, format_version) disagree with the manifest")
            if "compression" in manifest:
                expected = manifest["compression"]
                for name in ("hr", "lr"):
                    found = compression_record(f[name].compression or "none", f[name].compression_opts)
                    if found != expected:
                        raise AdlError(f"{path}: dataset {name} is compressed as {found}, the manifest says "
                                       f"{expected}; regenerate it")
            if version >= 2 and not all(f[name].fletcher32 for name in ("hr", "lr", "offset")):
                raise AdlError(f"{path}: format {version} shard without fletcher32 checksums; regenerate it")
            if decode:
                for name in want:
                    try:
                        f[name][()]
                    except OSError as exc:
                        raise AdlError(f"{path}: dataset {name} does not decode ({str(exc).splitlines()[0][:80]}); "
                                       f"the file is corrupt, regenerate it") from None
    except (OSError, KeyError) as exc:
        raise AdlError(f"{path}: not a readable shard ({type(exc).__name__}); regenerate it") from None


def verify_shards(shard_dir: str | Path) -> dict:
    """Check every shard (or PNG pair) against the manifest; returns the manifest if all is well."""
    folder = Path(shard_dir)
    manifest = read_manifest(folder)
    if manifest["options"]["format"] == "png":
        from adl.shards.png_pairs import verify_png_pairs

        verify_png_pairs(folder, manifest)
        return manifest
    if manifest["options"]["format"] == "lmdb":
        from adl.shards.lmdb_pairs import verify_lmdb_pairs

        verify_lmdb_pairs(folder, manifest)
        return manifest
    listed = {e["file"] for e in manifest["shards"]}
    if len(listed) != len(manifest["shards"]):
        raise AdlError(f"{folder / MANIFEST}: lists a shard twice; regenerate the folder")
    stray = sorted(p.name for p in folder.glob("shard-*.h5") if p.name not in listed)
    if stray:
        raise AdlError(f"{folder / stray[0]}: not listed in {MANIFEST} ({len(stray)} such file(s)); "
                       f"remove it or regenerate the folder")
    for entry in manifest["shards"]:
        check_shard(folder / entry["file"], entry, manifest)
    total = sum(e["samples"] for e in manifest["shards"])
    if total != manifest["total_samples"]:
        raise AdlError(f"{folder / MANIFEST}: shards hold {total} samples, the total says "
                       f"{manifest['total_samples']}")
    return manifest


def options_key(record: dict) -> str:
    """What a shard's record must name to be adopted: the hash of the generation's settings (generate.json).
    The part is left out: a shard and its record are the same whichever part, or unsplit run, wrote them."""
    import hashlib

    whole = {k: v for k, v in record.items() if k != "part"}
    return hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()
