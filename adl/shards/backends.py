"""The inference backends of ``adl generate``: G through ONNX Runtime or torch.

A backend's ``submit(image)`` starts G on one HxWx3 uint8 image (cropped to a multiple of the
scale) and returns a future whose ``result()`` is the LR image: several images can be in flight,
so decoding, inference and writing overlap. The ONNX Runtime path imports no torch.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from pathlib import Path

import numpy as np

from adl.errors import AdlError

BACKENDS = ("auto", "onnxruntime", "torch")


class _CopyBack:
    """A uint8 LR image on its way from the GPU into pinned host memory."""

    def __init__(self, host, event, keep_alive):
        self.host, self.event, self.keep_alive = host, event, keep_alive

    def result(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: str, scale: int | None, device_name: str, precision: str, compile: str,
                 float_output: bool = False):
        from adl.device import resolve_device
        from adl.downsampler.apply import load_downsampler
        from adl.downsampler.scales import repetitions
        from adl.fastpath import resolve_fast_path

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
        self.float_output = float_output

    def submit(self, image: np.ndarray):
        import torch

        from adl.downsampler.apply import apply_downsampler, image_tensor, uint8_image

        self.fast.step_begin()
        source = torch.from_numpy(np.ascontiguousarray(image))
        if self.cuda:
            source = source.pin_memory()  # lets the copy below run asynchronously
        x = self.fast.layout(image_tensor(source.to(self.fast.device, non_blocking=True)))
        with torch.inference_mode(), self.fast.autocast():
            y = apply_downsampler(self.run, x, self.scale)
            if self.float_output:  # unrounded, in 8-bit levels: the host adds noise before rounding
                done = cf.Future()
                done.set_result(((y[0].float() + 1) * 127.5).permute(1, 2, 0).cpu().numpy())
                return done
            lr = uint8_image(y)
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


_ENV_ARENA: list[bool] = []  # whether this process registered its CPU arena with ONNX Runtime


def _lean_cpu_memory(ort, options) -> None:
    """ONNX Runtime's CPU arena grows by powers of two and, with the memory pattern on, keeps a
    second planned block beside the first run's chunks: a 1020x680 image peaked at 2.8 GB where it
    needs 1.3 GB (docs/performance.md, "Generation memory"). Without the pattern, an arena that
    grows by what is asked is reused from the second image on (no page faults, same speed).
    Allocation only: the results are bit-identical (tests/test_memory.py)."""
    options.enable_mem_pattern = False
    if not _ENV_ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))  # kSameAsRequested
            _ENV_ARENA.append(True)
        except Exception:  # an older ONNX Runtime, or one registered already: keep the session's own arena
            _ENV_ARENA.append(False)
    if _ENV_ARENA[0]:
        options.add_session_config_entry("session.use_env_allocators", "1")


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
    _lean_cpu_memory(ort, options)
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
    """The exported fp32 graph. On CPU, two images run at once, each on half the cores, when two
    fit the memory budget (``streams``): the memory-bound layers of one (padding, InstanceNorm,
    layout reorders) overlap the other's convolutions, 10 % more images per second than one image
    on all cores (docs/performance.md), for twice the memory."""

    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str, scale: int | None, device_name: str, streams: int = 2, float_output: bool = False):
        self.path = path
        self.float_output = float_output
        cpus = usable_cpus()
        streams = min(streams, 2) if device_name != "cuda" and cpus >= 2 else 1
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
        if self.float_output:  # unrounded, in 8-bit levels: the host adds noise before rounding
            return np.ascontiguousarray(y[0].transpose(1, 2, 0))
        return np.clip(np.round(y[0], out=y[0]), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def backend_name(model: str, backend: str) -> str:
    """The backend ``auto`` resolves to for this model (checked further by open_backend)."""
    if backend != "auto":
        return backend
    return "onnxruntime" if Path(model).suffix.lower() == ".onnx" else "torch"


def open_backend(model: str, backend: str, device: str, scale: int | None, precision: str = "auto",
                 compile: str = "auto", streams: int = 2, float_output: bool = False):
    """``streams``: ONNX Runtime images in flight (at most 2); ``float_output``: submit() results are
    unrounded float32 LR in 8-bit levels, not uint8."""
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
        return OnnxBackend(model, scale, device, streams, float_output)
    return TorchBackend(model, scale, device, precision, compile, float_output)
