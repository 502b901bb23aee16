"""Resuming an ``adl generate`` output folder: what it holds, whether it is this very generation,
and which finished shards may be adopted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from adl.atomic import write_text
from adl.errors import AdlError
from adl.progress import progress
from adl.shards.format import (
    FORMAT_VERSION,
    MANIFEST,
    OPTIONS_FILE,
    manifest_problems,
    options_key,
    record_path,
    shard_against_record,
    shard_name,
)

log = logging.getLogger(__name__)


def prepare_output(out: Path, record: dict) -> bool:
    """Create SHARD_DIR or check it holds this very generation; True when it is already complete."""
    options_path = out / OPTIONS_FILE
    if options_path.exists():
        try:
            previous = json.loads(options_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{options_path}: unreadable ({exc}); use a new --output") from None
        if not isinstance(previous, dict) or not isinstance(previous.get("options"), dict):
            raise AdlError(f"{options_path}: not an adl generate record; use a new --output")
        if previous != record and not has_output(out):
            # Nothing was generated under the old settings (it failed early, e.g. on an image
            # smaller than the patch): the settings the error told the user to change may change.
            write_text(options_path, json.dumps(record, indent=2) + "\n")
            return False
        if previous != record:
            # Name what changed as the user wrote it: the options themselves, --model or --hr.
            old, new = previous["options"], record["options"]
            changed = sorted(f"--{k.replace('_', '-')}" for k in set(old) | set(new) if old.get(k) != new.get(k))
            if previous.get("model_sha256") != record["model_sha256"]:
                changed.append("--model")
            if previous.get("hr") != record["hr"]:
                changed.append("--hr (its files)")
            if previous.get("part") != record.get("part"):
                changed.append("--part")
            if previous.get("noise") != record.get("noise"):
                changed.append("--noise/--noise-mode (the model's bytes or mode)")
            if previous.get("jpeg_tables_sha256") != record.get("jpeg_tables_sha256"):
                changed.append("--jpeg-like (its tables)")
            raise AdlError(f"{out}: holds a generation with other settings ({', '.join(changed)}); rerun with the "
                           f"same options, add --restart to discard it and start over, or use a new --output")
        return (out / MANIFEST).exists()
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise AdlError(f"--output {out}: exists and is not an adl generate folder; use a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    write_text(options_path, json.dumps(record, indent=2) + "\n")
    return False


def discard_generation(out: Path) -> None:
    """--restart: remove exactly the files adl generate writes, so that a folder with anything else stays refused."""
    if not (out / OPTIONS_FILE).is_file():
        return
    patterns = ("shard-*.h5", "shard-*.record.json", ".shard-*.part.*", "hr/*.png", "lr/*.png", "meta_info.txt",
                MANIFEST, OPTIONS_FILE)
    removed = [path for pattern in patterns for path in out.glob(pattern)]
    for path in removed:
        path.unlink(missing_ok=True)
    from adl.shards.lmdb_pairs import remove_databases, remove_staging

    remove_databases(out)
    remove_staging(out)
    for side in ("hr", "lr"):
        if (out / side).is_dir() and not any((out / side).iterdir()):
            (out / side).rmdir()
    log.warning("%s: --restart removed %d file(s) of the earlier generation", out, len(removed))


def has_output(out: Path) -> bool:
    lmdb = any(out.glob("*.lmdb")) or any(out.glob(".staging/shard-*.h5"))
    return any(out.glob("shard-*.h5")) or any(out.glob("hr/*.png")) or any(out.glob("lr/*.png")) or lmdb


def remove_stale_temporaries(out: Path) -> None:
    """Temporaries of an interrupted run (only adl's own hidden ``.<name>.*.part.<ext>`` files)."""
    for pattern in (".shard-*.part.h5", ".shard-*.record.json.*.part.json"):
        for tmp in out.glob(pattern):
            tmp.unlink(missing_ok=True)


def still_complete(out: Path, format: str, record: dict) -> bool:
    """A finished h5 folder of this format whose shards all still match their records (damaged ones are removed)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        log.warning("%s: unreadable; finishing the generation again", out / MANIFEST)
        return False
    if manifest_problems(manifest):
        log.warning("%s: not a valid manifest; finishing the generation again", out / MANIFEST)
        return False
    if format == "lmdb":
        return _lmdb_still_complete(out, manifest)
    if format != "h5" or manifest["format_version"] != FORMAT_VERSION:
        return True  # format 1 folders have no records to check against; verify-shards still checks them
    sizes = {int(entry["file"][len("shard-"):-len(".h5")]): entry["samples"] for entry in manifest["shards"]}
    return len(finished_shards(out, sizes, options_key(record))) == len(sizes)


def finished_shards(out: Path, sizes: dict[int, int], key: str) -> dict[int, dict]:
    """Of the shards ``sizes`` names (index: samples), those that match their records, as manifest entries;
    every other one of their files is removed, with a warning."""
    done = {}
    for k in progress(sizes, desc="checking finished shards", unit="shard", leave=False):
        path = out / shard_name(k)
        if not path.is_file():
            record_path(path).unlink(missing_ok=True)
            continue
        entry, why = shard_against_record(path, key, sizes[k])
        if entry:
            done[k] = entry
            continue
        log.warning("%s: %s; regenerating it", path, why)
        path.unlink()
        record_path(path).unlink(missing_ok=True)
    return done


def _lmdb_still_complete(out: Path, manifest: dict) -> bool:
    """Both databases as the manifest recorded them; otherwise they are removed and written again (with the
    staged shards gone, that means generating every pair again: nothing damaged is adopted)."""
    from adl.shards.lmdb_pairs import damaged, remove_databases, remove_staging

    why = damaged(out, manifest)
    if why:
        log.warning("%s; generating the databases again", why)
        remove_databases(out)
        return False
    remove_staging(out)  # killed after the manifest, before the staged shards were removed
    return True
