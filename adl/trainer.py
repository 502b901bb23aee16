"""Algorithm 1: adversarial training of the downsampler G under a data term (method.md §6).

A run lives in one folder (RUN_DIR):
  config.json          every option, the seed, the data fingerprint and package versions
  checkpoint.pt        G, D, both optimisers, RNG states, the ADL kernel and the iteration
  log.csv              per logging interval: mean losses and cumulative seconds
  kernel_<it>.npy      each retrieved ADL kernel, and kernel.npy for the latest

Running the same command on an existing RUN_DIR resumes from checkpoint.pt. On CPU the resumed
run is bit-identical to an uninterrupted one: the model RNG is used only at initialisation,
batches are a pure function of (seed, iteration) (adl.data), and ADL kernel refreshes happen at
fixed iterations from the same G.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from adl.progress import progress

import adl
from adl.atomic import atomic_path, write_text
from adl.data import UnpairedPatches, load_images, patch_loader, to_unit_range
from adl.device import resolve_device
from adl.downsampling import CHECKPOINT_KIND, apply_downsampler, repetitions
from adl.errors import AdlError
from adl.imageio import list_images, write_png
from adl.kernels import kernel_picture
from adl.losses import DATA_LOSSES, DataTerm, discriminator_loss, generator_adversarial_loss
from adl.nets import Discriminator, Downsampler
from adl.retrieval import default_kernel_size, retrieve_from_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LOG_COLUMNS = ("iteration", "loss_d", "loss_g_adv", "loss_data", "data_term", "seconds")
MIN_DISC_PATCH = 32  # four stride-2 reflection-padded layers, then a 2×2 conv
RETRIEVAL_CROP = 1000  # method.md §5: each retrieval image is cropped to its top-left 1000×1000
# Options that may change between a run and its resumption: they do not alter the result.
RESUMABLE_OPTIONS = frozenset({"hr", "lr", "iterations", "checkpoint_every", "log_every", "device", "workers"})


@dataclass
class DownsamplerOptions:
    """The options of ``adl train-downsampler``; ``None`` means "derive from method.md §6"."""

    hr: str
    lr: str
    scale: int = 2
    data_loss: str = "adl"
    epoch_length: int = 1741
    iterations: int | None = None  # 80 epochs
    batch_size: int = 24
    lr_patch: int = 64
    hr_patch: int | None = None  # lr_patch × scale
    alpha: float | None = None  # 100 for adl, 200 otherwise
    warmup: int | None = None  # 10 epochs
    update_every: int | None = None  # 10 epochs
    retrieval_images: int = 50
    kernel_size: int | None = None  # 10 × scale
    width: int = 64
    disc_width: int = 64
    lr_rate: float = 5e-5
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int | None = None  # 1 epoch
    log_every: int = 100
    workers: int = 0

    def resolved(self) -> "DownsamplerOptions":
        o = dataclasses.replace(self)
        if o.data_loss not in DATA_LOSSES:
            raise AdlError(f"--data-loss {o.data_loss}: unknown; choose from {', '.join(DATA_LOSSES)}")
        repetitions(o.scale)
        e = o.epoch_length
        o.iterations = 80 * e if o.iterations is None else o.iterations
        o.hr_patch = o.lr_patch * o.scale if o.hr_patch is None else o.hr_patch
        o.alpha = (100.0 if o.data_loss == "adl" else 200.0) if o.alpha is None else float(o.alpha)
        o.warmup = 10 * e if o.warmup is None else o.warmup
        o.update_every = 10 * e if o.update_every is None else o.update_every
        o.kernel_size = default_kernel_size(o.scale) if o.kernel_size is None else o.kernel_size
        o.checkpoint_every = e if o.checkpoint_every is None else o.checkpoint_every
        for name in ("epoch_length", "batch_size", "lr_patch", "hr_patch", "update_every", "retrieval_images",
                     "width", "disc_width", "checkpoint_every", "log_every", "kernel_size"):
            if getattr(o, name) < 1:
                raise AdlError(f"--{name.replace('_', '-')} {getattr(o, name)}: must be at least 1")
        if o.iterations < 1:  # 0 would "finish" at once and report a checkpoint that was never written
            raise AdlError(f"--iterations {o.iterations}: must be at least 1")
        for name in ("warmup", "workers", "seed"):
            if getattr(o, name) < 0:
                raise AdlError(f"--{name.replace('_', '-')} {getattr(o, name)}: must not be negative")
        if o.hr_patch != o.lr_patch * o.scale:
            log.warning("--hr-patch %d is not --lr-patch × scale (%d): D sees G(HR) and LR patches of different sizes",
                        o.hr_patch, o.lr_patch * o.scale)
        smallest = min(o.lr_patch, o.hr_patch // o.scale)
        if smallest < MIN_DISC_PATCH:
            raise AdlError(f"--lr-patch {smallest}: the discriminator needs LR patches of at least {MIN_DISC_PATCH}"
                           f" (and --hr-patch at least {MIN_DISC_PATCH} × scale)")
        if o.hr_patch % o.scale:
            raise AdlError(f"--hr-patch {o.hr_patch}: must be a multiple of the scale {o.scale}")
        if o.data_loss in ("lfl", "lfl-gauss", "adl") and o.hr_patch < 16 * o.scale:
            raise AdlError(f"--hr-patch {o.hr_patch}: the low-frequency loss needs at least {16 * o.scale} (16 × scale)")
        if o.kernel_size % 2 != o.scale % 2:
            raise AdlError(f"--kernel-size {o.kernel_size}: must be {'even' if o.scale % 2 == 0 else 'odd'} at scale {o.scale}")
        if not (math.isfinite(o.lr_rate) and o.lr_rate > 0):  # written so that NaN fails too
            raise AdlError(f"--lr-rate {o.lr_rate}: must be a positive number")
        if not (math.isfinite(o.alpha) and o.alpha >= 0):
            raise AdlError(f"--alpha {o.alpha}: must be a number, zero or more")
        return o


def data_fingerprint(paths: list[Path]) -> str:
    """Names and sizes of the training files: cheap, and enough to notice a changed folder."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    return {"adl": adl.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations; a second SIGINT aborts at once."""

    def __init__(self):
        self.signum: int | None = None

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class TrainingInterrupted(AdlError):
    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def _prepare_run_dir(run_dir: Path, record: dict, create: bool = True) -> None:
    """Check that an existing RUN_DIR/config.json matches these options, or (``create``) write a new one."""
    config_path = run_dir / "config.json"
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{config_path}: unreadable ({exc}); use a new --output folder") from None
        old, new = previous.get("options", {}), record["options"]
        changed = [k for k in sorted(set(old) | set(new)) if k not in RESUMABLE_OPTIONS and old.get(k) != new.get(k)]
        if changed:
            diffs = ", ".join(f"--{k.replace('_', '-')} {old.get(k)!r} (now {new.get(k)!r})" for k in changed)
            raise AdlError(f"{run_dir}: this run was started with other options: {diffs}; "
                           f"rerun with the original options or use a new --output")
        for key, flag in (("hr_fingerprint", "--hr"), ("lr_fingerprint", "--lr")):
            if previous.get(key) != record[key]:
                raise AdlError(f"{run_dir}: the images under {flag} differ from those this run started with; "
                               f"restore them or use a new --output")
        return
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(config_path, json.dumps(record, indent=2) + "\n")


def _rewrite_log(path: Path, upto: int) -> None:
    """Drop log rows past the checkpoint we resume from, so the log matches the weights."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= upto]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


class DownsamplerTrainer:
    """Holds the state of one run; ``run()`` executes Algorithm 1 up to ``options.iterations``."""

    def __init__(self, options: DownsamplerOptions, run_dir: str | os.PathLike):
        self.o = options.resolved()
        self.run_dir = Path(run_dir)
        self.device = resolve_device(self.o.device)
        hr_paths = list_images(self.o.hr, what="--hr")
        lr_paths = list_images(self.o.lr, what="--lr")
        record = {
            "options": dataclasses.asdict(self.o),
            "seed": self.o.seed,
            "hr_fingerprint": data_fingerprint(hr_paths),
            "lr_fingerprint": data_fingerprint(lr_paths),
            "hr_count": len(hr_paths),
            "lr_count": len(lr_paths),
            "versions": package_versions(),
        }
        _prepare_run_dir(self.run_dir, record, create=False)  # refuse changed options before decoding
        self.hr_images = load_images(hr_paths, self.o.hr_patch, "HR images", "--hr-patch")
        self.lr_images = load_images(lr_paths, self.o.lr_patch, "LR images", "--lr-patch")
        # Only now: a config.json left by a run that failed on its images would pin the very options
        # (or file set) that the error message tells the user to change.
        _prepare_run_dir(self.run_dir, record)

        torch.manual_seed(self.o.seed)
        self.G = Downsampler(self.o.width).to(self.device)
        self.D = Discriminator(self.o.disc_width).to(self.device)
        adam = dict(lr=self.o.lr_rate, betas=(0.9, 0.999))
        self.opt_G = torch.optim.Adam(self.G.parameters(), **adam)
        self.opt_D = torch.optim.Adam(self.D.parameters(), **adam)
        self.data_term = DataTerm(self.o.data_loss, self.o.scale).to(self.device)
        self.kernel: np.ndarray | None = None  # float64 ADL kernel; the data term holds a float32 copy
        self.iteration = 0
        self.elapsed = 0.0
        self._load_checkpoint()

    # -- checkpointing ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.exists():
            return
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign or truncated file: say which, never traceback
            raise AdlError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to restart the run") from None
        if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
            raise AdlError(f"{path}: not an adl downsampler checkpoint; use a new --output")
        try:
            self.G.load_state_dict(ckpt["G"])
            self.D.load_state_dict(ckpt["D"])
            self.opt_G.load_state_dict(ckpt["opt_G"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
            if ckpt["kernel"] is not None:
                self.kernel = ckpt["kernel"].numpy()
                self.data_term.set_kernel(self.kernel)
            self.iteration = int(ckpt["iteration"])
            self.elapsed = float(ckpt["elapsed"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise AdlError(f"{path}: incomplete or damaged checkpoint ({type(exc).__name__}); "
                           f"delete it to restart the run") from None
        _rewrite_log(self.run_dir / "log.csv", self.iteration)
        log.info("resuming %s at iteration %d", self.run_dir, self.iteration)

    def save_checkpoint(self) -> None:
        ckpt = {
            "kind": CHECKPOINT_KIND,
            "format": CHECKPOINT_FORMAT,
            "adl_version": adl.__version__,
            "config": dataclasses.asdict(self.o),
            "seed": self.o.seed,
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            "kernel": None if self.kernel is None else torch.from_numpy(self.kernel),
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(ckpt, tmp)

    # -- ADL kernel --------------------------------------------------------------------------------
    def kernel_due(self, i: int) -> bool:
        o = self.o
        if o.data_loss != "adl" or i < o.warmup:
            return False
        return self.kernel is None or (i - o.warmup) % o.update_every == 0

    def retrieve_kernel(self) -> np.ndarray:
        """Eq. (6) on the current G over the first ``retrieval_images`` HR training images."""
        G, scale = self.G, self.o.scale

        def downsample01(x: torch.Tensor) -> torch.Tensor:
            return (apply_downsampler(G, x * 2 - 1, scale) + 1) / 2

        images = self.hr_images[: self.o.retrieval_images]
        with torch.no_grad():
            kernel = retrieve_from_model(downsample01, images, scale, self.o.kernel_size, len(images),
                                         crop=RETRIEVAL_CROP, device=self.device)
        self.kernel = kernel
        self.data_term.set_kernel(kernel)
        for name in (f"kernel_{self.iteration}.npy", "kernel.npy"):
            with atomic_path(self.run_dir / name) as tmp:
                np.save(tmp, kernel)
        write_png(self.run_dir / "kernel.png", kernel_picture(kernel))
        return kernel

    # -- the loop -----------------------------------------------------------------------------------
    def step(self, hr: torch.Tensor, lr: torch.Tensor, term: str) -> tuple[torch.Tensor, ...]:
        """One iteration of Algorithm 1: update D once, then G once."""
        o = self.o
        fake = apply_downsampler(self.G, hr, o.scale, straight_through=True)

        self.opt_D.zero_grad(set_to_none=True)
        loss_d = discriminator_loss(self.D(lr), self.D(fake.detach()))
        loss_d.backward()
        self.opt_D.step()

        self.opt_G.zero_grad(set_to_none=True)
        loss_adv = generator_adversarial_loss(self.D(fake))
        loss_data = self.data_term(hr, fake, term)
        (o.alpha * loss_data + loss_adv).backward()
        self.opt_G.step()
        return loss_d.detach(), loss_adv.detach(), loss_data.detach()

    def active_term(self, i: int) -> str:
        if self.o.data_loss == "adl" and i < self.o.warmup:
            return "lfl"  # Algorithm 1, lines 7–8: LFL during warm-up
        return self.o.data_loss

    def run(self) -> Path:
        o = self.o
        if self.iteration >= o.iterations:
            log.warning("%s: already trained for %d iterations; nothing to do", self.run_dir, self.iteration)
            return self.checkpoint_path
        dataset = UnpairedPatches(self.hr_images, self.lr_images, o.hr_patch, o.lr_patch, o.seed)
        loader = patch_loader(dataset, self.iteration, o.iterations, o.batch_size, o.workers,
                              pin=self.device.type == "cuda")
        log_path = self.run_dir / "log.csv"
        new_log = not log_path.exists()
        sums = torch.zeros(3, device=self.device)
        rows_in_sum, terms = 0, set()
        with open(log_path, "a", newline="") as log_file, StopRequest() as stop:
            writer = csv.writer(log_file, lineterminator="\n")
            if new_log:
                writer.writerow(LOG_COLUMNS)
            bar = progress(total=o.iterations, initial=self.iteration, desc=f"train-downsampler ({o.data_loss})",
                           unit="it")
            started = time.perf_counter() - self.elapsed
            for hr_u8, lr_u8 in loader:
                i = self.iteration
                if self.kernel_due(i):
                    bar.set_postfix_str("retrieving kernel")
                    self.retrieve_kernel()
                term = self.active_term(i)
                losses = self.step(to_unit_range(hr_u8, self.device), to_unit_range(lr_u8, self.device), term)
                sums += torch.stack(losses)
                rows_in_sum += 1
                terms.add(term)
                self.iteration = i + 1
                bar.update(1)
                done = self.iteration == o.iterations
                checkpoint_due = self.iteration % o.checkpoint_every == 0 or done or stop.signum is not None
                if self.iteration % o.log_every == 0 or checkpoint_due:
                    self.elapsed = time.perf_counter() - started
                    means = (sums / rows_in_sum).tolist()
                    writer.writerow([self.iteration, *(f"{v:.6g}" for v in means), "+".join(sorted(terms)),
                                     f"{self.elapsed:.3f}"])
                    log_file.flush()
                    bar.set_postfix(d=f"{means[0]:.3f}", adv=f"{means[1]:.3f}", data=f"{means[2]:.4f}")
                    sums.zero_()
                    rows_in_sum, terms = 0, set()
                if checkpoint_due:
                    self.save_checkpoint()
                if stop.signum is not None and not done:
                    bar.close()
                    name = signal.Signals(stop.signum).name
                    raise TrainingInterrupted(
                        f"{name} at iteration {self.iteration}: checkpoint saved in {self.run_dir}; "
                        f"rerun the same command to resume", stop.signum)
            bar.close()
        return self.checkpoint_path


def train_downsampler(options: DownsamplerOptions, run_dir: str | os.PathLike) -> Path:
    return DownsamplerTrainer(options, run_dir).run()
