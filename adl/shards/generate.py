"""Bulk generation of (IDown, IHR) training pairs from a downsampler, as shards or PNG folders.

Images stream through three stages that overlap: a pool of threads decodes HR files, the
main thread runs G (ONNX Runtime or torch) and cuts patches, and one writer thread compresses
and writes finished shards. Memory therefore stays flat in the number of images.

Sample g of a run is patch g mod n of image g div n (n patches per image); patch positions
come from a generator seeded with (seed, image index), so the same inputs, model and seed give
the same samples in the same shards. A shard appears under its final name only when complete;
a rerun of the same command skips the finished shards that still match their records (others
are regenerated, with a warning), and manifest.json is written last. With ``part`` a run writes
only its share of those shards (adl.shards.parts); ``adl merge-shards`` joins them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import multiprocessing
import os
from collections import deque
from pathlib import Path

import numpy as np

import adl
from adl.atomic import file_sha256, write_text
from adl.errors import AdlError, UsageError, naming
from adl.image_lists import resolve_images
from adl.imageio import read_image, require_unique_stems, write_png
from adl.progress import progress
from adl.shards.backends import backend_name, open_backend, usable_cpus
from adl.shards.finish import Finisher
from adl.shards.format import (
    COMPRESSION,
    COMPRESSION_LEVEL,
    FORMAT_VERSION,
    MANIFEST,
    compression_record,
    options_key,
    shard_name,
    write_manifest,
    write_shard,
)
from adl.shards.options import GenerateOptions
from adl.shards.parts import (
    images_of_shards,
    parse_part,
    part_shards,
    shard_size_for_bytes,
)
from adl.shards.resume import (
    discard_generation,
    finished_shards,
    prepare_output,
    remove_stale_temporaries,
    still_complete,
)

log = logging.getLogger(__name__)

PATCH_STREAM = 4


# -- sampling ---------------------------------------------------------------------------------------
def patch_offsets(image_index: int, lr_shape: tuple[int, int], lr_patch: int, count: int, seed: int) -> np.ndarray:
    """LR top-left corners of the patches of one image (HR offsets are these × scale)."""
    rng = np.random.default_rng([seed, PATCH_STREAM, image_index])
    h, w = lr_shape
    return np.stack([rng.integers(h - lr_patch + 1, size=count), rng.integers(w - lr_patch + 1, size=count)], 1)


def _decoded(paths, workers: int):
    """Decode in a thread pool, yielding in order, with a bounded read-ahead."""
    # PNG decoding releases the GIL; a DIV2K image takes ~50 ms on one core, so 60 images/s
    # needs several threads.
    workers = workers or min(8, usable_cpus())
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        it = iter(paths)
        for path in it:
            pending.append((path, pool.submit(read_image, path)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            path, future = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(read_image, nxt)))
            yield path, future.result()


def generate(o: GenerateOptions) -> dict:
    o.check()
    finish = Finisher(o.noise, o.noise_mode, o.jpeg_like, o.seed)
    backend = open_backend(o.model, o.backend, o.device, o.scale, o.precision, o.compile, _streams(o),
                           finish.float_output)
    try:
        finish.check_scale(backend.scale)
        return _generate(o, backend, finish)
    finally:
        backend.close()


def _read_ahead(o: GenerateOptions) -> int:
    """Decoded images that can wait for G: _decoded's bound."""
    return 2 * (o.workers or min(8, usable_cpus()))


def _streams(o: GenerateOptions) -> int:
    """Two images in G at once (ONNX Runtime on CPU) only if two of the largest fit --max-memory."""
    from adl.downsampler.memory import check_budget, default_budget, images_in_flight
    from adl.imageio import image_pixels

    name = backend_name(o.model, o.backend)
    if name not in ("onnxruntime", "torch"):
        return 1  # open_backend names the problem
    budget = o.max_memory or default_budget()
    check_budget(name, budget)
    if name != "onnxruntime":
        return 1
    largest = max((image_pixels(p) for p in resolve_images(o.hr, what="--hr")), default=0)
    return images_in_flight(name, budget, largest, _read_ahead(o), wanted=2)


def _check_memory(o: GenerateOptions, backend, path: Path, h: int, w: int) -> None:
    """An image that alone would take G past --max-memory is refused (or skipped) before it runs."""
    from adl.downsampler.memory import check_image, default_budget

    if backend.provider in ("CPUExecutionProvider", "torch:cpu"):  # a GPU's memory is another matter
        with naming(path):
            check_image(backend.name, o.max_memory or default_budget(), h, w, _read_ahead(o))


def _generate(o: GenerateOptions, backend, finish: Finisher) -> dict:
    s = backend.scale
    if o.patch % s:
        raise UsageError(f"--patch {o.patch}: must be a multiple of the scale {s}")
    model_sha = file_sha256(Path(o.model) / "checkpoint.pt" if Path(o.model).is_dir() else o.model)
    paths = resolve_images(o.hr, what="--hr")
    skipped: list[dict] = []
    if o.on_error == "skip":
        paths, skipped = _usable_images(o, backend, paths)
    if o.format in ("png", "lmdb"):  # pairs are named by stem: a.png and a.jpg would write, and list, the same pair
        require_unique_stems(paths, "--hr")
    if o.format == "lmdb":
        from adl.shards.lmdb_pairs import check_keys, require_lmdb

        require_lmdb()
        check_keys(paths)
    out = Path(o.output)
    # Options that change the samples are recorded; a resume must repeat them. The device, thread
    # and process counts and compilation do not change them.
    # The part is recorded apart from the options: every part of one generation has the same options.
    # The noise model and JPEG set are recorded by content (finish.record()), not by path.
    speed_only = ("model", "hr", "output", "workers", "writers", "device", "compile", "restart", "part", "max_memory",
                  "noise", "jpeg_like")
    options = {k: v for k, v in dataclasses.asdict(o).items() if k not in speed_only}
    options.update(scale=s, backend=backend.name, precision=backend.precision)
    if o.on_error == "stop":  # the default changes nothing: records from before --on-error existed still match
        del options["on_error"]
    del options["noise_mode"]  # recorded with the model in finish.record(), only when there is noise
    if o.full_images:
        options["patch"] = options["patches_per_image"] = None
    if o.shard_bytes is not None and not o.full_images:
        options["shard_size"] = shard_size_for_bytes(o.shard_bytes, o.patch, s)
    if o.compression != "gzip":
        options["gzip_level"] = None
    # Layout options at their defaults are left out of the record, so that folders written before
    # these options existed still resume (the manifest's "compression" says what every shard holds).
    for key, default in (("shard_bytes", None), ("compression", COMPRESSION), ("gzip_level", COMPRESSION_LEVEL)):
        if options[key] == default:
            del options[key]
    record = {"model_sha256": model_sha, "hr": [p.name for p in paths], "options": options, **finish.record()}
    if o.part is not None:
        record["part"] = list(parse_part(o.part))
    log.info("generating with %s (provider %s)", backend.name, backend.provider)
    if o.restart:
        discard_generation(out)
    if prepare_output(out, record):
        if still_complete(out, o.format, record):
            log.warning("%s: already complete; nothing to do", out)
            return json.loads((out / MANIFEST).read_text())
        (out / MANIFEST).unlink()
    remove_stale_temporaries(out)
    manifest = {"format_version": FORMAT_VERSION, "scale": s, "model": {"path": str(o.model), "sha256": model_sha},
                "adl_version": adl.__version__, "options": options, "seed": o.seed, "provider": backend.provider}
    if o.on_error == "skip":
        manifest["skipped"] = skipped
    manifest.update(finish.manifest())
    if o.format == "png":
        manifest.update(_generate_png(o, backend, finish, paths, out))
    elif o.format == "lmdb":
        manifest.update(_generate_lmdb(o, backend, finish, paths, out, model_sha, options["shard_size"],
                                       options_key(record)))
    else:
        manifest["compression"] = compression_record(o.compression, o.gzip_level)
        manifest.update(_generate_shards(o, backend, finish, paths, out, model_sha, options["shard_size"],
                                         options_key(record)))
    write_manifest(out, manifest)
    if o.format == "lmdb":
        from adl.shards.lmdb_pairs import remove_staging

        remove_staging(out)
    return manifest


def _usable_images(o: GenerateOptions, backend, paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """--on-error skip: a first pass decodes every image and sets aside those that fail, each with
    its reason, so that the sample layout (and so a resume) rests only on images that work."""
    def reason(path: Path) -> str | None:
        try:
            _checked(o, backend, path, read_image(path))
        except AdlError as exc:
            return str(exc)
        return None

    workers = o.workers or min(8, usable_cpus())
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(progress(pool.map(reason, paths), total=len(paths), desc="checking images", unit="img",
                                leave=False))
    skipped = [{"file": p.name, "reason": why} for p, why in zip(paths, reasons) if why is not None]
    for entry in skipped:
        log.warning("skipping %s", entry["reason"])
    usable = [p for p, why in zip(paths, reasons) if why is None]
    if not usable:
        raise AdlError(f"--hr {o.hr}: none of the {len(paths)} image(s) is usable (each was skipped); "
                       f"see the warnings above")
    return usable, skipped


def _checked(o: GenerateOptions, backend, path: Path, hr: np.ndarray) -> np.ndarray:
    """HR cropped to a multiple of the scale, refusing (and naming) an image too small for the patch
    or G, or too large for --max-memory."""
    from adl.downsampler.scales import min_input_size

    s = backend.scale
    h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
    if not o.full_images and (h < o.patch or w < o.patch):
        raise AdlError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is smaller than the {o.patch}x{o.patch} patch; "
                       f"lower --patch or remove the image")
    least = min_input_size(s)
    if h < least or w < least:
        raise AdlError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is smaller than {least}x{least}, the least G "
                       f"downsamples at ×{s}; remove the image")
    _check_memory(o, backend, path, h, w)
    return hr[:h, :w]


def _downsampled(o: GenerateOptions, backend, finish: Finisher, images):
    """(index, path, hr, lr) in order, with up to ``backend.in_flight`` images inside G at once; lr is
    finished (noise added, rounded) on the host."""
    pending: deque = deque()
    for index, path, hr in images:
        hr = _checked(o, backend, path, hr)
        pending.append((index, path, hr, backend.submit(hr)))
        if len(pending) > backend.in_flight:
            index, path, hr, lr = pending.popleft()
            yield index, path, hr, finish.lr(index, lr.result())
    while pending:
        index, path, hr, lr = pending.popleft()
        yield index, path, hr, finish.lr(index, lr.result())


def _writer_pool(writers: int) -> cf.Executor:
    """Shard compression holds the GIL inside h5py, so at GPU speeds it runs in other processes."""
    if writers == 0:
        return cf.ThreadPoolExecutor(max_workers=1)
    # spawn, not fork: a forked child would inherit CUDA state and the decoding threads' locks.
    return cf.ProcessPoolExecutor(max_workers=writers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """A writer outlives a SIGKILLed parent otherwise (its task queue never reaches EOF); a shard it
    leaves half-written is a hidden temporary that the next run removes."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _cut(o: GenerateOptions, index: int, path: Path, hr: np.ndarray, lr: np.ndarray, s: int):
    q = o.patch // s
    if lr.shape[0] < q or lr.shape[1] < q:
        raise AdlError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is smaller than the {o.patch}x{o.patch} patch; "
                       f"lower --patch or remove the image")
    for y, x in patch_offsets(index, lr.shape[:2], q, o.patches_per_image, o.seed):
        yield (s * y, s * x), hr[s * y : s * (y + q), s * x : s * (x + q)], lr[y : y + q, x : x + q]


def _generate_shards(o: GenerateOptions, backend, finish: Finisher, paths: list[Path], out: Path, model_sha: str,
                     shard_size: int, key: str) -> dict:
    s, n = backend.scale, o.patches_per_image
    total = len(paths) * n
    shards = (total + shard_size - 1) // shard_size
    ours = part_shards(shards, *parse_part(o.part)) if o.part else range(shards)
    written = finished_shards(out, {k: min(shard_size, total - k * shard_size) for k in ours}, key)
    # Shards of other parts count as done: this run neither writes nor lists them.
    done = set(written) | set(range(ours.start)) | set(range(ours.stop, shards))
    needed = images_of_shards([k for k in ours if k not in done], shard_size, n, total)
    if written:
        log.info("resuming: %d of %d shards already written", len(written), len(ours))
    buffers: dict[int, list] = {}
    writes: deque = deque()
    images = ((index, path, hr) for index, (path, hr) in zip(needed, _decoded([paths[i] for i in needed], o.workers)))
    with _writer_pool(o.writers) as writer:
        bar = progress(total=len(needed), desc=f"generate ({backend.name})", unit="img")
        for index, path, hr, lr in _downsampled(o, backend, finish, images):
            for j, (offset, hr_patch, lr_patch) in enumerate(_cut(o, index, path, hr, lr, s)):
                g = index * n + j
                k = g // shard_size
                if k in done:
                    continue
                buffers.setdefault(k, []).append((g, path.stem, offset, hr_patch, finish.pixels(lr_patch)))
                if len(buffers[k]) == min(shard_size, total - k * shard_size):
                    rows = sorted(buffers.pop(k), key=lambda r: r[0])
                    while len(writes) > max(1, o.writers):  # a bounded number in flight: memory stays flat
                        k_done, entry = writes.popleft()
                        written[k_done] = entry.result()
                    writes.append((k, writer.submit(
                        write_shard, out / shard_name(k), np.stack([r[3] for r in rows]),
                        np.stack([r[4] for r in rows]), [r[1] for r in rows],
                        np.array([r[2] for r in rows], dtype=np.int32), s, model_sha, key, o.compression,
                        o.gzip_level)))
            bar.update(1)
        for k, w in writes:
            written[k] = w.result()
        bar.close()
    # Shards of this run were hashed by their writer, those of an earlier run by finished_shards.
    entries = [written[k] for k in ours]
    result = {"shards": entries, "total_samples": sum(e["samples"] for e in entries)}
    if o.part:
        index, count = parse_part(o.part)
        # What merge-shards checks the parts against: together they must be exactly the whole.
        result["part"] = {"index": index, "count": count, "first_shard": ours.start, "shards": len(ours),
                          "dataset_shards": shards, "dataset_samples": total}
    return result


def _generate_png(o: GenerateOptions, backend, finish: Finisher, paths: list[Path], out: Path) -> dict:
    s = backend.scale
    names = []
    images = ((index, path, hr) for index, (path, hr) in enumerate(_decoded(paths, o.workers)))
    for index, path, hr, lr in progress(_downsampled(o, backend, finish, images), total=len(paths),
                                        desc=f"generate png ({backend.name})", unit="img"):
        if o.full_images:
            pairs = [(f"{path.stem}.png", hr[: lr.shape[0] * s, : lr.shape[1] * s], lr)]
        else:
            pairs = [(f"{path.stem}_{j:03d}.png", hp, lp) for j, (_, hp, lp) in enumerate(_cut(o, index, path, hr, lr, s))]
        for name, hp, lp in pairs:
            if not all(p.exists() for p in (out / "hr" / name, *finish.lr_files(out, name))):
                finish.write_lr(out, name, lp)
                write_png(out / "hr" / name, hp)
            names.append((name, hp.shape))
    # BasicSR's paired-folder meta file: one GT name and shape per line.
    write_text(out / "meta_info.txt", "".join(f"{n} ({h},{w},3)\n" for n, (h, w, _) in names))
    return {"pairs": len(names), "meta_info": "meta_info.txt", "total_samples": len(names), "shards": []}


def _generate_lmdb(o: GenerateOptions, backend, finish: Finisher, paths: list[Path], out: Path, model_sha: str,
                   shard_size: int, key: str) -> dict:
    """Shards first, with their records and resume rules, then both databases from them (adl.shards.lmdb_pairs)."""
    from adl.shards.lmdb_pairs import STAGING, remove_databases, write_databases

    staging = out / STAGING
    staging.mkdir(exist_ok=True)
    remove_stale_temporaries(staging)
    remove_databases(out)  # unfinished: they are written again from the shards
    # Uncompressed: the staged shards are read back once, on this machine, and then removed.
    staged = _generate_shards(dataclasses.replace(o, compression="none"), backend, finish, paths, staging, model_sha,
                              shard_size, key)
    entry = write_databases(out, [staging / e["file"] for e in staged["shards"]], o.patches_per_image)
    n = staged["total_samples"]
    return {"lmdb": entry, "pairs": n, "meta_info": "meta_info.txt", "total_samples": n, "shards": []}
