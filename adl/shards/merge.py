"""``adl merge-shards``: one dataset from the finished parts of one generation (``adl generate --part``).

Parts are checked against each other (same model, HR list and options; every part of N present,
once) and every shard is verified against its part's manifest (size, sha256, shapes, fletcher32-
checked decode: adl.shards.format.check_shard) before any is adopted. Shards are adopted without
rewriting their payload: a hard link, or a rename with ``move``; both are single atomic directory
operations, so a merge killed at any point leaves whole shards under final names only, and
rerunning it finishes the job. Each adopted shard then gets its record (adl.shards.format.write_record),
and the manifest is written last, as by ``adl generate``: the result is the folder, records
included, that an unsplit run writes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import adl
from adl.atomic import write_text
from adl.errors import AdlError
from adl.folder_lock import LOCK_FILE, PID_FILE
from adl.progress import progress
from adl.shards.format import (
    MANIFEST,
    OPTIONS_FILE,
    check_shard,
    options_key,
    read_manifest,
    record_path,
    shard_name,
    write_manifest,
    write_record,
)
from adl.shards.parts import part_shards

log = logging.getLogger(__name__)

RECORD = OPTIONS_FILE


class Part:
    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.record = json.loads((folder / RECORD).read_text())
        except FileNotFoundError:
            raise AdlError(f"{folder}: no {RECORD}; not a folder written by adl generate --part") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{folder / RECORD}: unreadable ({exc}); regenerate this part") from None
        if not isinstance(self.record, dict) or "part" not in self.record:
            raise AdlError(f"{folder}: a whole generation, not a part (made without --part); merge only parts")
        if not (folder / MANIFEST).is_file():
            raise AdlError(f"{folder}: no {MANIFEST}, so this part did not finish; rerun its adl generate --part "
                           f"command, then merge")
        self.manifest = read_manifest(folder)
        self.index, self.count = self.record["part"]
        self.info = self.manifest.get("part") or {}

    def source(self, entry: dict, output: Path) -> Path:
        """Where a shard is now: in the part, or already in the output (a merge with --move was interrupted)."""
        here = self.folder / entry["file"]
        return here if here.exists() or not (output / entry["file"]).exists() else output / entry["file"]


def _differences(a: Part, b: Part) -> list[str]:
    old, new = a.record["options"], b.record["options"]
    changed = sorted(f"--{k.replace('_', '-')}" for k in set(old) | set(new) if old.get(k) != new.get(k))
    if a.record.get("model_sha256") != b.record.get("model_sha256"):
        changed.append("--model")
    if a.record.get("hr") != b.record.get("hr"):
        changed.append("--hr (its files)")
    if a.count != b.count:
        changed.append(f"--part (of {b.count}, not of {a.count})")
    if a.record.get("noise") != b.record.get("noise"):
        changed.append("--noise/--noise-mode")
    if a.record.get("jpeg_tables_sha256") != b.record.get("jpeg_tables_sha256"):
        changed.append("--jpeg-like")
    for key in ("format_version", "scale", "compression"):
        if a.manifest.get(key) != b.manifest.get(key) and f"--{key}" not in changed:
            changed.append(key.replace("_", " "))
    return changed


def _check_parts(parts: list[Part]) -> None:
    first = parts[0]
    for part in parts[1:]:
        changed = _differences(first, part)
        if changed:
            raise AdlError(f"{part.folder}: made with other settings than {first.folder} ({', '.join(changed)}); "
                           f"merge only the parts of one generation")
    seen: dict[int, Part] = {}
    for part in parts:
        if part.index in seen:
            raise AdlError(f"{part.folder}: part {part.index}/{part.count} given twice "
                           f"(also {seen[part.index].folder}); give each part once")
        seen[part.index] = part
    missing = [str(i) for i in range(1, first.count + 1) if i not in seen]
    if missing:
        raise AdlError(f"part(s) {', '.join(missing)} of {first.count} missing; give all {first.count} part folders")
    for part in parts:
        info = part.info
        want = part_shards(info.get("dataset_shards", -1), part.index, part.count)
        files = [e["file"] for e in part.manifest["shards"]]
        if (info.get("first_shard"), info.get("shards")) != (want.start, len(want)) \
                or files != [shard_name(k) for k in want]:
            raise AdlError(f"{part.folder}: its manifest does not list shards {want.start}-{want.stop - 1} of part "
                           f"{part.index}/{part.count}; regenerate this part")


def _prepare_output(out: Path, record: dict, parts: list[Part]) -> bool:
    """Create the output or check it is this very merge; True when it is already complete."""
    for part in parts:
        if out.exists() and out.resolve() == part.folder.resolve():
            raise AdlError(f"--output {out}: is the part folder {part.folder}; name a new folder")
    record_path = out / RECORD
    if record_path.exists():
        try:
            previous = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{record_path}: unreadable ({exc}); use a new --output") from None
        if previous != record:
            raise AdlError(f"--output {out}: holds another generation; use a new --output")
        return (out / MANIFEST).exists()
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise AdlError(f"--output {out}: exists and is not a merge of these parts; use a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    write_text(record_path, json.dumps(record, indent=2) + "\n")
    return False


def _adopt(source: Path, target: Path, move: bool) -> None:
    """Give ``target`` the file ``source``: one link() or rename(), so never a partial file."""
    try:
        if target.exists():
            if os.path.samefile(source, target):
                if move and source != target:
                    source.unlink()
                return
            target.unlink()  # the source was verified: another file under its name is stale
        if move:
            os.rename(source, target)
        else:
            os.link(source, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise AdlError(f"--output {target.parent}: on another filesystem than {source.parent}; shards are adopted "
                           f"by hard link or rename, so put --output on the parts' filesystem") from None
        verb = "move" if move else "hard-link"
        raise AdlError(f"{source}: cannot {verb} it to {target} ({exc.strerror or exc}); check permissions "
                       f"(or use --move where hard links are not supported)") from None


def _clear_moved(parts: list[Part], out: Path) -> None:
    """After --move, a part's records describe shards it no longer has: remove them, and the part if empty."""
    for part in parts:
        if any((part.folder / e["file"]).exists() for e in part.manifest["shards"]):
            continue
        for name in (MANIFEST, RECORD):
            (part.folder / name).unlink(missing_ok=True)
        for entry in part.manifest["shards"]:
            record_path(part.folder / entry["file"]).unlink(missing_ok=True)
        # The lock file a finished generate leaves behind; its pid file exists only while a process holds it.
        if not (part.folder / PID_FILE).exists():
            (part.folder / LOCK_FILE).unlink(missing_ok=True)
        try:
            part.folder.rmdir()
        except OSError:
            pass  # something else lives there: not ours to remove


def _finished_merge(out: Path, part_folders) -> dict | None:
    """The manifest of a finished merge of exactly these part folders into ``out``, if there is one."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    merged = manifest.get("merged_from") if isinstance(manifest, dict) else None
    if not isinstance(merged, list):
        return None
    if sorted(str(m.get("folder")) for m in merged) != sorted(str(Path(f)) for f in part_folders):
        return None
    return read_manifest(out)


def merge_shards(part_folders: list[str | os.PathLike], output: str | os.PathLike, move: bool = False) -> dict:
    out = Path(output)
    if not part_folders:
        raise AdlError("give at least one PART_DIR")
    done = _finished_merge(out, part_folders)
    if done:  # checked first: after --move the parts are gone
        log.warning("%s: already complete; nothing to do", out)
        return done
    parts = sorted((Part(Path(f)) for f in part_folders), key=lambda p: p.index)
    _check_parts(parts)
    record = {k: v for k, v in parts[0].record.items() if k != "part"}
    if _prepare_output(out, record, parts):
        log.warning("%s: already complete; nothing to do", out)
        if move:
            _clear_moved(parts, out)
        return read_manifest(out)
    for pattern in (".shard-*.part.h5", ".shard-*.record.json.*.part.json"):  # a killed write's temporaries
        for stale in out.glob(pattern):
            stale.unlink(missing_ok=True)
    # Every part is verified before any shard is adopted: a bad part leaves the output untouched.
    for part in parts:
        for entry in progress(part.manifest["shards"], desc=f"verify part {part.index}/{part.count}",
                              unit="shard", leave=False):
            check_shard(part.source(entry, out), entry, part.manifest)
    entries = []
    key = options_key(record)
    for part in parts:
        for entry in part.manifest["shards"]:
            _adopt(part.source(entry, out), out / entry["file"], move)
            # The record an unsplit run writes (its key leaves the part out), written once the shard is here.
            write_record(out / entry["file"], entry, key)
            if move:
                record_path(part.folder / entry["file"]).unlink(missing_ok=True)
            entries.append(entry)
    info = parts[0].info
    total = sum(e["samples"] for e in entries)
    if len(entries) != info["dataset_shards"] or total != info["dataset_samples"]:
        raise AdlError(f"parts hold {len(entries)} shards and {total} samples, their manifests say "
                       f"{info['dataset_shards']} and {info['dataset_samples']}; regenerate the parts")
    first = parts[0].manifest
    providers = sorted({p.manifest["provider"] for p in parts})
    manifest = {"format_version": first["format_version"], "scale": first["scale"], "model": first["model"],
                "adl_version": adl.__version__, "options": first["options"], "seed": first["seed"],
                "provider": ", ".join(providers), "compression": first.get("compression"),
                **({"skipped": first["skipped"]} if "skipped" in first else {}),
                **{k: first[k] for k in ("noise", "jpeg") if k in first},
                "shards": entries, "total_samples": total,
                "merged_from": [{"part": f"{p.index}/{p.count}", "folder": str(p.folder),
                                 "provider": p.manifest["provider"]} for p in parts]}
    write_manifest(out, manifest)
    if move:
        _clear_moved(parts, out)
    return manifest
