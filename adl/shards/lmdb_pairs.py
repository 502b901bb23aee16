"""``adl generate --format lmdb``: BasicSR's LMDB layout (what its ``scripts/data_preparation/create_lmdb.py``
writes), and its verification.

SHARD_DIR/hr.lmdb/{data.mdb, lock.mdb, meta_info.txt}   SHARD_DIR/lr.lmdb/{same}
meta_info.txt: one ``<key>.png (h,w,c) <png compression level>`` line per pair, the same keys on both sides.
Each value is a PNG file's bytes; BasicSR's ``PairedImageDataset`` with ``io_backend: {type: lmdb}`` reads them.

An LMDB file has no checksum of its own and a damaged one may crash its reader, so the integrity promises
of shards are kept by generating shards first: uncompressed HDF5 shards in the hidden ``.staging`` folder,
with their records and resume rules (adl.shards.resume). Only then are both databases written, under hidden
temporary names, from those shards, renamed into place, recorded in the manifest with their size and sha256
(verify-shards and a rerun check them before LMDB opens a file) and the staging folder is removed. A run
killed before the manifest exists resumes the shards and writes both databases again.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from adl.atomic import file_sha256
from adl.errors import AdlError
from adl.progress import progress

log = logging.getLogger(__name__)

STAGING = ".staging"
SIDES = ("hr", "lr")
PNG_LEVEL = 1  # BasicSR's create_lmdb default: pairs are written once and decoded every epoch
_META_LINE = re.compile(r"^(?P<key>[^ .]+)\.png \((?P<h>\d+),(?P<w>\d+),(?P<c>\d+)\) (?P<level>\d+)$")
_KEY = re.compile(r"^[^ .]+$")


def database(out: Path, side: str) -> Path:
    return out / f"{side}.lmdb"


def _temporary(out: Path, side: str) -> Path:
    return out / f".{side}.lmdb.part"


def remove_databases(out: Path) -> None:
    """What an unfinished run left of the databases: written again from the staged shards."""
    for side in SIDES:
        for path in (database(out, side), _temporary(out, side)):
            if path.exists():
                shutil.rmtree(path)


def remove_staging(out: Path) -> None:
    """After the manifest: the databases are the dataset, the staged shards only a means to resume."""
    if (out / STAGING).exists():
        shutil.rmtree(out / STAGING)


def require_lmdb() -> None:
    """Before any work: the lmdb package is an extra."""
    import importlib.util

    if importlib.util.find_spec("lmdb") is None:
        raise AdlError("--format lmdb: the lmdb package is not installed; pip install 'adl[lmdb]'")


def check_keys(paths: list[Path]) -> None:
    """BasicSR reads an LMDB key as the meta_info line up to its first '.', so a stem may hold no dot or space."""
    for p in paths:
        if not _KEY.match(p.stem):
            raise AdlError(f"{p}: --format lmdb names pairs '<stem>_<k>' and BasicSR cuts LMDB keys at the first '.' "
                           f"or space; rename the file without them")


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def write_databases(out: Path, shards: list[Path], patches_per_image: int) -> dict:
    """hr.lmdb and lr.lmdb from the staged shards, in sample order; returns the manifest's ``lmdb`` entry."""
    import lmdb

    remove_databases(out)
    raw = sum(os.path.getsize(s) for s in shards)
    # LMDB needs its largest size up front; the file grows only as far as it is used.
    envs = {side: lmdb.open(str(_temporary(out, side)), map_size=2 * raw + (64 << 20)) for side in SIDES}
    meta: dict[str, list[str]] = {side: [] for side in SIDES}
    g = 0
    try:
        for shard in progress(shards, desc="writing LMDB", unit="shard"):
            with h5py.File(shard, "r") as f:
                sources, images = f["source"].asstr()[()], {side: f[side][()] for side in SIDES}
            txns = {side: envs[side].begin(write=True) for side in SIDES}
            for row, source in enumerate(sources):
                key = f"{source}_{g % patches_per_image:03d}"
                for side in SIDES:
                    image = images[side][row]
                    txns[side].put(key.encode("ascii"), encode_png(image))
                    h, w, c = image.shape
                    meta[side].append(f"{key}.png ({h},{w},{c}) {PNG_LEVEL}\n")
                g += 1
            for txn in txns.values():
                txn.commit()
    finally:
        for env in envs.values():
            env.sync()
            env.close()
    entry = {}
    for side in SIDES:
        (_temporary(out, side) / "meta_info.txt").write_text("".join(meta[side]))
        data = _temporary(out, side) / "data.mdb"
        entry[side] = {"folder": database(out, side).name, "keys": g, "bytes": data.stat().st_size,
                       "sha256": file_sha256(data), "meta_sha256": file_sha256(data.with_name("meta_info.txt"))}
    for side in SIDES:  # one rename each: a database exists under its final name only when complete
        os.replace(_temporary(out, side), database(out, side))
    return entry


def damaged(out: Path, manifest: dict) -> str:
    """Why a finished LMDB folder no longer matches its manifest ("" when it does), without opening LMDB."""
    for side in SIDES:
        entry = manifest.get("lmdb", {}).get(side)
        data = database(out, side) / "data.mdb"
        if entry is None:
            return f"{out / 'manifest.json'}: no lmdb.{side} entry"
        if not data.is_file():
            return f"{data}: missing"
        if data.stat().st_size != entry["bytes"]:
            return f"{data}: {data.stat().st_size} bytes, the manifest says {entry['bytes']}"
        if file_sha256(data) != entry["sha256"]:
            return f"{data}: sha256 differs from the manifest (the file changed after it was written)"
        meta = data.with_name("meta_info.txt")
        if not meta.is_file() or file_sha256(meta) != entry["meta_sha256"]:
            return f"{meta}: missing or changed since it was written"
    return ""


def _meta_lines(path: Path) -> list[tuple[str, int, int]]:
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = _META_LINE.match(line)
        if not match or match["c"] != "3":
            raise AdlError(f"{path}: line {number} is not '<key>.png (H,W,3) <level>'; regenerate the folder")
        pairs.append((match["key"], int(match["h"]), int(match["w"])))
    return pairs


def verify_lmdb_pairs(folder: Path, manifest: dict) -> None:
    """Both databases against the manifest (size, sha256: before LMDB opens them), then every value decodes
    as the PNG its meta_info line says, LR is HR/s, both sides hold exactly the listed keys: else AdlError."""
    import lmdb

    why = damaged(folder, manifest)
    if why:
        raise AdlError(f"{why}; rerun the same adl generate command")
    s, patch, total = manifest["scale"], manifest["options"]["patch"], manifest["total_samples"]
    metas = {side: _meta_lines(database(folder, side) / "meta_info.txt") for side in SIDES}
    if [k for k, _, _ in metas["hr"]] != [k for k, _, _ in metas["lr"]]:
        raise AdlError(f"{folder}: hr.lmdb and lr.lmdb list different keys; regenerate the folder")
    if len(metas["hr"]) != total or len({k for k, _, _ in metas["hr"]}) != total:
        raise AdlError(f"{folder / 'manifest.json'}: total_samples is {total}, meta_info.txt lists "
                       f"{len(metas['hr'])} pair(s) (each key once); regenerate the folder")
    for side in SIDES:
        env = lmdb.open(str(database(folder, side)), readonly=True, lock=False, readahead=False)
        try:
            if env.stat()["entries"] != total:
                raise AdlError(f"{database(folder, side)}: holds {env.stat()['entries']} keys, meta_info.txt lists "
                               f"{total}; regenerate the folder")
            with env.begin() as txn:
                for key, h, w in metas[side]:
                    _check_value(database(folder, side), key, txn.get(key.encode("ascii")), side, (h, w), s, patch)
        finally:
            env.close()


def _check_value(db: Path, key: str, value: bytes | None, side: str, hw: tuple[int, int], s: int, patch) -> None:
    if value is None:
        raise AdlError(f"{db}: key {key} is listed in meta_info.txt but missing; regenerate the folder")
    try:
        image = np.asarray(Image.open(io.BytesIO(value)).convert("RGB"))
    except (OSError, ValueError):
        raise AdlError(f"{db}: key {key} is not a readable PNG; regenerate the folder") from None
    h, w = hw
    want = (patch, patch) if side == "hr" else (patch // s, patch // s)
    if image.shape[:2] != (h, w) or (h, w) != want:
        raise AdlError(f"{db}: key {key} is {image.shape[1]}x{image.shape[0]}, meta_info.txt says {w}x{h}, a "
                       f"{side.upper()} patch is {want[1]}x{want[0]} at scale {s}; regenerate the folder")
