"""Bulk generation of (IDown, IHR) training pairs from a downsampler, as shards or PNG folders.

Images stream through three stages that overlap: a pool of threads decodes HR files, the
main thread runs G (ONNX Runtime or torch) and cuts patches, and one writer thread compresses
and writes finished shards. Memory therefore stays flat in the number of images.

Sample g of a run is patch g mod n of image g div n (n patches per image); patch positions
come from a generator seeded with (seed, image index), so the same inputs, model and seed give
the same samples in the same shards. A shard appears under its final name only when complete;
a rerun of the same command skips the finished shards that still match their records (others
are regenerated, with a warning), and manifest.json is written last. With ``part`` a run writes
only its share of those shards (adl.parts); ``adl merge-shards`` joins them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import multiprocessing
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import adl
from adl.atomic import file_sha256, write_text
from adl.choices import COMPILE_CHOICES, COMPILE_HELP, DEVICE_HELP, INFER_PRECISIONS, SCALES
from adl.errors import AdlError, UsageError
from adl.image_lists import resolve_images
from adl.imageio import read_image, require_unique_stems, write_png
from adl.options import byte_size, device_name, option
from adl.parts import images_of_shards, parse_part, part_shards, shard_size_for_bytes
from adl.progress import progress
from adl.shards import (COMPRESSION, COMPRESSION_LEVEL, COMPRESSIONS, FORMAT_VERSION, MANIFEST, OPTIONS_FILE,
                        compression_record, manifest_problems, record_path, shard_against_record, shard_name,
                        write_manifest, write_shard)

log = logging.getLogger(__name__)

PATCH_STREAM = 4
BACKENDS = ("auto", "onnxruntime", "torch")
FORMATS = ("h5", "png")
ON_ERROR = ("stop", "skip")


@dataclass
class GenerateOptions:
    """The options of ``adl generate``."""

    model: str = option(help="model.onnx or a downsampler checkpoint/run folder")
    hr: str | list[str] = option(help="HR images: folders, list files (one path per line) or quoted glob patterns, "
                                      "one or more", several=True, metavar="HR")
    output: str = option(help="SHARD_DIR; rerunning the same command resumes")
    patch: int = option(192, "HR patch size", minimum=1)
    patches_per_image: int = option(16, "patches cut from each image", minimum=1)
    full_images: bool = option(False, "whole images instead of patches (--format png)")
    shard_size: int = option(512, "samples per shard", minimum=1)
    shard_bytes: int | None = option(None, "shard size in uncompressed bytes, e.g. 1G or 256M, instead of a sample count",
                                     parse=byte_size, metavar="BYTES")
    compression: str = option(COMPRESSION, "filter for hr and lr (docs/shards.md compares them)", choices=COMPRESSIONS)
    gzip_level: int = option(COMPRESSION_LEVEL, "0-9 with --compression gzip", minimum=0)
    part: str | None = option(None, "write only the I-th of N parts (its own --output); adl merge-shards joins them",
                              metavar="I/N")
    scale: int | None = option(None, "2 or 4 (default: the model's)", choices=SCALES)
    backend: str = option("auto", "auto: ONNX Runtime for a .onnx model, torch for a checkpoint", choices=BACKENDS)
    device: str = option("auto", DEVICE_HELP, parse=device_name)
    workers: int = option(0, "decoding threads; 0: one per usable CPU, at most 8")
    seed: int = option(0, "seed of the patch positions")
    format: str = option("h5", "h5: HDF5 shards (docs/shards.md); png: BasicSR paired folders", choices=FORMATS)
    precision: str = option("auto", "torch backend: fp32 on CPU, fp16 and torch.compile on CUDA (docs/performance.md)",
                            choices=INFER_PRECISIONS)
    compile: str = option("auto", COMPILE_HELP, choices=COMPILE_CHOICES)
    writers: int = option(1, "processes that compress and write shards; 0: a thread of this process")
    on_error: str = option("stop", "an unreadable or too small HR image: stop, or skip it (listed in the manifest)",
                           choices=ON_ERROR)
    restart: bool = option(False, "discard what an earlier generation with other settings left in --output")


# -- backends ---------------------------------------------------------------------------------------
# A backend's ``submit(image)`` starts G on one HxWx3 uint8 image (cropped to a multiple of the
# scale) and returns a future whose ``result()`` is the LR image: several images can be in flight,
# so decoding, inference and writing overlap.
class _CopyBack:
    """A uint8 LR image on its way from the GPU into pinned host memory."""

    def __init__(self, host, event, keep_alive):
        self.host, self.event, self.keep_alive = host, event, keep_alive

    def result(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: str, scale: int | None, device_name: str, precision: str, compile: str):
        from adl.device import resolve_device
        from adl.downsampling import load_downsampler
        from adl.fastpath import resolve_fast_path
        from adl.scales import repetitions

        device = resolve_device(device_name)
        self.fast = resolve_fast_path(precision, compile, device, training=False)
        model, config = load_downsampler(checkpoint, device, option="--model")
        self.run = self.fast.compiled(self.fast.prepare(model))
        self.scale = scale or config["scale"]
        repetitions(self.scale)
        self.precision = self.fast.precision
        self.provider = f"torch:{device}"
        self.cuda = device.type == "cuda"
        self.in_flight = 2 if self.cuda else 1  # the GPU works on one image while the host finishes another

    def submit(self, image: np.ndarray):
        import torch

        from adl.downsampling import apply_downsampler, image_tensor, uint8_image

        self.fast.step_begin()
        source = torch.from_numpy(np.ascontiguousarray(image))
        if self.cuda:
            source = source.pin_memory()  # lets the copy below run asynchronously
        x = self.fast.layout(image_tensor(source.to(self.fast.device, non_blocking=True)))
        with torch.inference_mode(), self.fast.autocast():
            lr = uint8_image(apply_downsampler(self.run, x, self.scale))
        if not self.cuda:
            done = cf.Future()
            done.set_result(lr.numpy())
            return done
        host = torch.empty(lr.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(lr, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return _CopyBack(host, event, (source, lr))

    def close(self) -> None:
        pass


def onnx_session(path: str, device_name: str, threads: int = 0):
    """An ONNX Runtime session on CUDA when it really runs there, else on CPU; ``cuda`` must be CUDA.

    ``threads`` caps the CPU provider's intra-op threads (0: ONNX Runtime's default).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise AdlError("--backend onnxruntime: onnxruntime is not installed; pip install 'adl[cpu]' or 'adl[gpu]'") from None
    if device_name not in ("auto", "cpu", "cuda"):
        raise AdlError(f"--device {device_name}: ONNX Runtime takes auto, cpu or cuda")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    wants_cuda = device_name in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    providers = (["CUDAExecutionProvider"] if wants_cuda else []) + ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad or foreign files
        raise AdlError(f"--model {path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
    # The CUDA provider can be listed yet fail to load its libraries; then ORT quietly uses CPU.
    active = session.get_providers()[0]
    if device_name == "cuda" and active != "CUDAExecutionProvider":
        raise AdlError(f"--device cuda: ONNX Runtime has no working CUDA provider here "
                       f"(available: {', '.join(ort.get_available_providers())}); use --device cpu, "
                       f"or --backend torch for a GPU")
    return session, active


class OnnxBackend:
    """The exported fp32 graph. On CPU, two images run at once, each on half the cores: the
    memory-bound layers of one (padding, InstanceNorm, layout reorders) overlap the other's
    convolutions, 10 % more images per second than one image on all cores (docs/performance.md)."""

    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str, scale: int | None, device_name: str):
        self.path = path
        cpus = _usable_cpus()
        streams = 2 if device_name != "cuda" and cpus >= 2 else 1
        self.session, self.provider = onnx_session(path, device_name, threads=max(1, cpus // streams))
        if self.provider != "CPUExecutionProvider":
            streams = 1
        self.pool = cf.ThreadPoolExecutor(max_workers=streams)
        self.in_flight = streams
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if len(inputs) != 1 or len(outputs) != 1 or len(shape) != 4 or shape[1] != 3:
            found = f"{len(inputs)} input(s), shape {[i.shape for i in inputs]}"
            raise AdlError(f"--model {path}: not a downsampler ONNX (expects 1 input of N×3×H×W, found {found}); "
                           f"export one with adl export")
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("adl_kind") != "downsampler" or "adl_scale" not in meta:
            raise AdlError(f"--model {path}: no adl downsampler metadata; export the model with adl export")
        self.scale = int(meta["adl_scale"])
        if scale is not None and scale != self.scale:
            raise AdlError(f"--scale {scale}: {path} was exported for ×{self.scale}; export again with --scale {scale}")
        self.input_name = inputs[0].name

    def submit(self, image: np.ndarray):
        return self.pool.submit(self.downsample, image)

    def downsample(self, image: np.ndarray) -> np.ndarray:
        s = self.scale
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        np.divide(x, 255.0, out=x)
        try:
            y = self.session.run(None, {self.input_name: x})[0]
        except Exception as exc:  # ORT's own exception types: a graph that cannot take this input
            raise AdlError(f"--model {self.path}: ONNX Runtime failed on a {x.shape[3]}x{x.shape[2]} image "
                           f"({str(exc).splitlines()[0][:200]})") from None
        want = (1, 3, x.shape[2] // s, x.shape[3] // s)
        if y.shape != want:  # e.g. a 3-channel model with adl metadata that is no ×s downsampler
            raise AdlError(f"--model {self.path}: output of shape {y.shape} for input {x.shape}, expected {want}; "
                           f"not a ×{s} downsampler, export one with adl export")
        y *= 255.0
        return np.clip(np.round(y[0], out=y[0]), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def open_backend(model: str, backend: str, device: str, scale: int | None, precision: str = "auto",
                 compile: str = "auto"):
    if backend not in BACKENDS:
        raise AdlError(f"--backend {backend}: choose from {', '.join(BACKENDS)}")
    is_onnx = Path(model).suffix.lower() == ".onnx"
    if backend == "auto":
        backend = "onnxruntime" if is_onnx else "torch"
    if backend == "onnxruntime" and not is_onnx:
        raise AdlError(f"--model {model}: the onnxruntime backend needs an .onnx file; run adl export first")
    if backend == "torch" and is_onnx:
        raise AdlError(f"--model {model}: the torch backend needs a downsampler checkpoint, not an .onnx file")
    if not Path(model).exists():
        raise AdlError(f"--model {model}: no such file")
    if backend == "onnxruntime":
        if precision not in ("auto", "fp32") or compile not in ("auto", "off"):
            flag = f"--precision {precision}" if precision not in ("auto", "fp32") else f"--compile {compile}"
            raise AdlError(f"{flag}: the onnxruntime backend runs the exported fp32 graph as it is; "
                           f"use --backend torch with a checkpoint for this lever")
        return OnnxBackend(model, scale, device)
    return TorchBackend(model, scale, device, precision, compile)


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
    workers = workers or min(8, _usable_cpus())
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


# -- the run ----------------------------------------------------------------------------------------
def _check_options(o: GenerateOptions) -> None:
    if o.format not in FORMATS:
        raise UsageError(f"--format {o.format}: choose from {', '.join(FORMATS)}")
    if o.on_error not in ON_ERROR:
        raise UsageError(f"--on-error {o.on_error}: choose from {', '.join(ON_ERROR)}")
    if o.full_images and o.format != "png":
        raise UsageError("--full-images: whole images have different sizes and are written as PNG folders; add --format png")
    for name in ("patch", "patches_per_image", "shard_size"):
        if getattr(o, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(o, name)}: must be at least 1")
    if o.shard_bytes is not None and o.shard_bytes < 1:
        raise UsageError(f"--shard-bytes {o.shard_bytes}: must be at least 1")
    if o.shard_bytes is not None and o.shard_size != GenerateOptions.shard_size:
        raise UsageError("--shard-size and --shard-bytes: give one of them")
    if o.compression not in COMPRESSIONS:
        raise UsageError(f"--compression {o.compression}: choose from {', '.join(COMPRESSIONS)}")
    if not 0 <= o.gzip_level <= 9:
        raise UsageError(f"--gzip-level {o.gzip_level}: must be 0 to 9")
    if o.part is not None:
        parse_part(o.part)
        if o.format != "h5":
            raise UsageError(f"--part {o.part}: parts split HDF5 shards; PNG folders (--format png) are written by "
                             f"one run")
    for name in ("workers", "writers"):
        if getattr(o, name) < 0:
            raise UsageError(f"--{name} {getattr(o, name)}: must not be negative")


def _prepare_output(out: Path, record: dict) -> bool:
    """Create SHARD_DIR or check it holds this very generation; True when it is already complete."""
    options_path = out / OPTIONS_FILE
    if options_path.exists():
        try:
            previous = json.loads(options_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{options_path}: unreadable ({exc}); use a new --output") from None
        if not isinstance(previous, dict) or not isinstance(previous.get("options"), dict):
            raise AdlError(f"{options_path}: not an adl generate record; use a new --output")
        if previous != record and not _has_output(out):
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
            raise AdlError(f"{out}: holds a generation with other settings ({', '.join(changed)}); rerun with the "
                           f"same options, add --restart to discard it and start over, or use a new --output")
        return (out / MANIFEST).exists()
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise AdlError(f"--output {out}: exists and is not an adl generate folder; use a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    write_text(options_path, json.dumps(record, indent=2) + "\n")
    return False


def _discard_generation(out: Path) -> None:
    """--restart: remove exactly the files adl generate writes, so that a folder with anything else stays refused."""
    if not (out / OPTIONS_FILE).is_file():
        return
    patterns = ("shard-*.h5", "shard-*.record.json", ".shard-*.part.*", "hr/*.png", "lr/*.png", "meta_info.txt",
                MANIFEST, OPTIONS_FILE)
    removed = [path for pattern in patterns for path in out.glob(pattern)]
    for path in removed:
        path.unlink(missing_ok=True)
    for side in ("hr", "lr"):
        if (out / side).is_dir() and not any((out / side).iterdir()):
            (out / side).rmdir()
    log.warning("%s: --restart removed %d file(s) of the earlier generation", out, len(removed))


def _has_output(out: Path) -> bool:
    return any(out.glob("shard-*.h5")) or any(out.glob("hr/*.png")) or any(out.glob("lr/*.png"))


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries of an interrupted run (only adl's own hidden ``.<name>.*.part.<ext>`` files)."""
    for pattern in (".shard-*.part.h5", ".shard-*.record.json.*.part.json"):
        for tmp in out.glob(pattern):
            tmp.unlink(missing_ok=True)


def generate(o: GenerateOptions) -> dict:
    _check_options(o)
    backend = open_backend(o.model, o.backend, o.device, o.scale, o.precision, o.compile)
    try:
        return _generate(o, backend)
    finally:
        backend.close()


def _generate(o: GenerateOptions, backend) -> dict:
    s = backend.scale
    if o.patch % s:
        raise UsageError(f"--patch {o.patch}: must be a multiple of the scale {s}")
    model_sha = file_sha256(Path(o.model) / "checkpoint.pt" if Path(o.model).is_dir() else o.model)
    paths = resolve_images(o.hr, what="--hr")
    skipped: list[dict] = []
    if o.on_error == "skip":
        paths, skipped = _usable_images(o, s, paths)
    if o.format == "png":  # pairs are named by stem: a.png and a.jpg would write, and list, the same pair
        require_unique_stems(paths, "--hr")
    out = Path(o.output)
    # Options that change the samples are recorded; a resume must repeat them. The device, thread
    # and process counts and compilation do not change them.
    # The part is recorded apart from the options: every part of one generation has the same options.
    speed_only = ("model", "hr", "output", "workers", "writers", "device", "compile", "restart", "part")
    options = {k: v for k, v in dataclasses.asdict(o).items() if k not in speed_only}
    options.update(scale=s, backend=backend.name, precision=backend.precision)
    if o.on_error == "stop":  # the default changes nothing: records from before --on-error existed still match
        del options["on_error"]
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
    record = {"model_sha256": model_sha, "hr": [p.name for p in paths], "options": options}
    if o.part is not None:
        record["part"] = list(parse_part(o.part))
    log.info("generating with %s (provider %s)", backend.name, backend.provider)
    if o.restart:
        _discard_generation(out)
    if _prepare_output(out, record):
        if _still_complete(out, o, record):
            log.warning("%s: already complete; nothing to do", out)
            return json.loads((out / MANIFEST).read_text())
        (out / MANIFEST).unlink()
    _remove_stale_temporaries(out)
    manifest = {"format_version": FORMAT_VERSION, "scale": s, "model": {"path": str(o.model), "sha256": model_sha},
                "adl_version": adl.__version__, "options": options, "seed": o.seed, "provider": backend.provider}
    if o.on_error == "skip":
        manifest["skipped"] = skipped
    if o.format == "png":
        manifest.update(_generate_png(o, backend, paths, out))
    else:
        manifest["compression"] = compression_record(o.compression, o.gzip_level)
        manifest.update(_generate_shards(o, backend, paths, out, model_sha, options["shard_size"], options_key(record)))
    write_manifest(out, manifest)
    return manifest


def _still_complete(out: Path, o: GenerateOptions, record: dict) -> bool:
    """A finished h5 folder of this format whose shards all still match their records (damaged ones are removed)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        log.warning("%s: unreadable; finishing the generation again", out / MANIFEST)
        return False
    if manifest_problems(manifest):
        log.warning("%s: not a valid manifest; finishing the generation again", out / MANIFEST)
        return False
    if o.format != "h5" or manifest["format_version"] != FORMAT_VERSION:
        return True  # format 1 folders have no records to check against; verify-shards still checks them
    sizes = {int(entry["file"][len("shard-"):-len(".h5")]): entry["samples"] for entry in manifest["shards"]}
    return len(_finished_shards(out, sizes, options_key(record))) == len(sizes)


def _usable_images(o: GenerateOptions, s: int, paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """--on-error skip: a first pass decodes every image and sets aside those that fail, each with
    its reason, so that the sample layout (and so a resume) rests only on images that work."""
    def reason(path: Path) -> str | None:
        try:
            _checked(o, s, path, read_image(path))
        except AdlError as exc:
            return str(exc)
        return None

    workers = o.workers or min(8, _usable_cpus())
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


def _checked(o: GenerateOptions, s: int, path: Path, hr: np.ndarray) -> np.ndarray:
    """HR cropped to a multiple of the scale, refusing (and naming) an image too small for the patch or G."""
    from adl.scales import min_input_size

    h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
    if not o.full_images and (h < o.patch or w < o.patch):
        raise AdlError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is smaller than the {o.patch}x{o.patch} patch; "
                       f"lower --patch or remove the image")
    least = min_input_size(s)
    if h < least or w < least:
        raise AdlError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is smaller than {least}x{least}, the least G "
                       f"downsamples at ×{s}; remove the image")
    return hr[:h, :w]


def _downsampled(o: GenerateOptions, backend, images):
    """(index, path, hr, lr) in order, with up to ``backend.in_flight`` images inside G at once."""
    pending: deque = deque()
    for index, path, hr in images:
        hr = _checked(o, backend.scale, path, hr)
        pending.append((index, path, hr, backend.submit(hr)))
        if len(pending) > backend.in_flight:
            index, path, hr, lr = pending.popleft()
            yield index, path, hr, lr.result()
    while pending:
        index, path, hr, lr = pending.popleft()
        yield index, path, hr, lr.result()


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


def options_key(record: dict) -> str:
    """What a shard's record must name to be adopted: the hash of the generation's settings (generate.json).
    The part is left out: a shard and its record are the same whichever part, or unsplit run, wrote them."""
    import hashlib

    whole = {k: v for k, v in record.items() if k != "part"}
    return hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()


def _finished_shards(out: Path, sizes: dict[int, int], key: str) -> dict[int, dict]:
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


def _generate_shards(o: GenerateOptions, backend, paths: list[Path], out: Path, model_sha: str,
                     shard_size: int, key: str) -> dict:
    s, n = backend.scale, o.patches_per_image
    total = len(paths) * n
    shards = (total + shard_size - 1) // shard_size
    ours = part_shards(shards, *parse_part(o.part)) if o.part else range(shards)
    written = _finished_shards(out, {k: min(shard_size, total - k * shard_size) for k in ours}, key)
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
        for index, path, hr, lr in _downsampled(o, backend, images):
            for j, (offset, hr_patch, lr_patch) in enumerate(_cut(o, index, path, hr, lr, s)):
                g = index * n + j
                k = g // shard_size
                if k in done:
                    continue
                buffers.setdefault(k, []).append((g, path.stem, offset, hr_patch, lr_patch))
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
    # Shards of this run were hashed by their writer, those of an earlier run by _finished_shards.
    entries = [written[k] for k in ours]
    result = {"shards": entries, "total_samples": sum(e["samples"] for e in entries)}
    if o.part:
        index, count = parse_part(o.part)
        # What merge-shards checks the parts against: together they must be exactly the whole.
        result["part"] = {"index": index, "count": count, "first_shard": ours.start, "shards": len(ours),
                          "dataset_shards": shards, "dataset_samples": total}
    return result


def _generate_png(o: GenerateOptions, backend, paths: list[Path], out: Path) -> dict:
    s = backend.scale
    names = []
    images = ((index, path, hr) for index, (path, hr) in enumerate(_decoded(paths, o.workers)))
    for index, path, hr, lr in progress(_downsampled(o, backend, images), total=len(paths),
                                        desc=f"generate png ({backend.name})", unit="img"):
        if o.full_images:
            pairs = [(f"{path.stem}.png", hr[: lr.shape[0] * s, : lr.shape[1] * s], lr)]
        else:
            pairs = [(f"{path.stem}_{j:03d}.png", hp, lp) for j, (_, hp, lp) in enumerate(_cut(o, index, path, hr, lr, s))]
        for name, hp, lp in pairs:
            if not ((out / "hr" / name).exists() and (out / "lr" / name).exists()):
                write_png(out / "lr" / name, lp)
                write_png(out / "hr" / name, hp)
            names.append((name, hp.shape))
    # BasicSR's paired-folder meta file: one GT name and shape per line.
    write_text(out / "meta_info.txt", "".join(f"{n} ({h},{w},3)\n" for n, (h, w, _) in names))
    return {"pairs": len(names), "meta_info": "meta_info.txt", "total_samples": len(names), "shards": []}
