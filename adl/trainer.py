"""Algorithm 1: adversarial training of the downsampler G under a data term (method.md §6).

A run lives in one folder (RUN_DIR, see adl.runs): config.json, checkpoint.pt (G, D, both
optimisers, RNG states, the ADL kernel, the iteration), log.csv, and kernel_<it>.npy for each
retrieved ADL kernel with kernel.npy/kernel.png for the latest.

Running the same command on an existing RUN_DIR resumes from checkpoint.pt. On CPU the resumed
run is bit-identical to an uninterrupted one: the model RNG is used only at initialisation,
batches are a pure function of (seed, iteration) (adl.data), and ADL kernel refreshes happen at
fixed iterations from the same G.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adl.atomic import atomic_path, write_text
from adl.choices import SAMPLING_CHOICES
from adl.data import (ResidentImages, UnpairedPatches, UnpairedPositions, load_images, loader_workers, patch_loader,
                      to_unit_range)
from adl.device import resolve_device
from adl.fastpath import FastPath, resolve_fast_path
from adl.downsampling import CHECKPOINT_KIND, UnitRangeDownsampler, apply_downsampler
from adl.errors import AdlError, UsageError
from adl.imageio import list_images, write_png
from adl.kernels import kernel_picture
from adl.losses import DATA_LOSSES, DataTerm, discriminator_loss, generator_adversarial_loss
from adl.nets import Discriminator, Downsampler
from adl.retrieval import default_kernel_size, equation_count, retrieve_from_model
from adl.runs import TrainingRun, data_fingerprint
from adl.scales import repetitions

log = logging.getLogger(__name__)

MIN_DISC_PATCH = 32  # four stride-2 reflection-padded layers, then a 2×2 conv
RETRIEVAL_CROP = 1000  # method.md §5: each retrieval image is cropped to its top-left 1000×1000
# Options that may change between a run and its resumption: they do not alter the result.
RESUMABLE_OPTIONS = frozenset({"hr", "lr", "iterations", "checkpoint_every", "log_every", "device", "workers",
                               "precision", "compile", "sampling"})
RESIDENT_SHARE = 4  # images go to the GPU only if they take at most 1/4 of its free memory


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
    workers: int | None = None  # DataLoader processes; None: 0 on CPU, 4 on CUDA (adl.data.loader_workers)
    precision: str = "auto"  # adl.fastpath: fp32 on CPU, bf16 and the other levers on CUDA
    compile: str = "auto"
    sampling: str = "auto"  # where patches are cut: "device" keeps the images on the GPU

    def resolved(self) -> "DownsamplerOptions":
        o = dataclasses.replace(self)
        if o.data_loss not in DATA_LOSSES:
            raise UsageError(f"--data-loss {o.data_loss}: unknown; choose from {', '.join(DATA_LOSSES)}")
        repetitions(o.scale)
        if o.sampling not in SAMPLING_CHOICES:
            raise UsageError(f"--sampling {o.sampling}: choose from {', '.join(SAMPLING_CHOICES)}")
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
                raise UsageError(f"--{name.replace('_', '-')} {getattr(o, name)}: must be at least 1")
        if o.iterations < 1:  # 0 would "finish" at once and report a checkpoint that was never written
            raise UsageError(f"--iterations {o.iterations}: must be at least 1")
        for name in ("warmup", "workers", "seed"):
            if getattr(o, name) is not None and getattr(o, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(o, name)}: must not be negative")
        if o.hr_patch != o.lr_patch * o.scale:
            log.warning("--hr-patch %d is not --lr-patch × scale (%d): D sees G(HR) and LR patches of different sizes",
                        o.hr_patch, o.lr_patch * o.scale)
        smallest = min(o.lr_patch, o.hr_patch // o.scale)
        if smallest < MIN_DISC_PATCH:
            raise UsageError(f"--lr-patch {smallest}: the discriminator needs LR patches of at least {MIN_DISC_PATCH}"
                           f" (and --hr-patch at least {MIN_DISC_PATCH} × scale)")
        if o.hr_patch % o.scale:
            raise UsageError(f"--hr-patch {o.hr_patch}: must be a multiple of the scale {o.scale}")
        if o.data_loss in ("lfl", "lfl-gauss", "adl") and o.hr_patch < 16 * o.scale:
            raise UsageError(f"--hr-patch {o.hr_patch}: the low-frequency loss needs at least {16 * o.scale} (16 × scale)")
        if o.kernel_size % 2 != o.scale % 2:
            raise UsageError(f"--kernel-size {o.kernel_size}: must be {'even' if o.scale % 2 == 0 else 'odd'} at scale {o.scale}")
        if not (math.isfinite(o.lr_rate) and o.lr_rate > 0):  # written so that NaN fails too
            raise UsageError(f"--lr-rate {o.lr_rate}: must be a positive number")
        if not (math.isfinite(o.alpha) and o.alpha >= 0):
            raise UsageError(f"--alpha {o.alpha}: must be a number, zero or more")
        return o


class DownsamplerTrainer(TrainingRun):
    """One run of Algorithm 1 up to ``options.iterations``."""

    kind = CHECKPOINT_KIND
    loss_names = ("loss_d", "loss_g_adv", "loss_data")
    extra_columns = ("data_term",)
    resumable = RESUMABLE_OPTIONS

    def __init__(self, options: DownsamplerOptions, run_dir: str | os.PathLike, fast: FastPath | None = None):
        """``fast`` overrides the levers that --precision and --compile choose (benchmarks isolate each)."""
        o = self.o = options.resolved()
        hr_paths = list_images(o.hr, what="--hr")
        lr_paths = list_images(o.lr, what="--lr")
        device = resolve_device(o.device)
        self.fast = fast or resolve_fast_path(o.precision, o.compile, device, training=True)
        super().__init__(run_dir, dataclasses.asdict(o),
                         {"hr_fingerprint": ("--hr", data_fingerprint(hr_paths)),
                          "lr_fingerprint": ("--lr", data_fingerprint(lr_paths))},
                         device, f"train-downsampler ({o.data_loss}, {self.fast.precision})")
        self.check_folder()  # refuse changed options before decoding anything
        self.hr_images = load_images(hr_paths, o.hr_patch, "HR images", "--hr-patch")
        self.lr_images = load_images(lr_paths, o.lr_patch, "LR images", "--lr-patch")
        self._require_retrieval_equations()  # now, not after the warm-up
        self.create_folder()
        self._record_retrieval_options()
        self.resident = self._resident_images()

        torch.manual_seed(o.seed)
        self.G = self.fast.prepare(Downsampler(o.width))
        self.D = self.fast.prepare(Discriminator(o.disc_width))
        self.run_G, self.run_D = self.fast.compiled(self.G), self.fast.compiled(self.D)
        self.opt_G = self.fast.adam(self.G.parameters(), o.lr_rate)
        self.opt_D = self.fast.adam(self.D.parameters(), o.lr_rate)
        self.data_term = DataTerm(o.data_loss, o.scale).to(self.device)
        self.kernel: np.ndarray | None = None  # float64 ADL kernel; the data term holds a float32 copy
        self._terms_since_row: set[str] = set()
        self.load_checkpoint()

    # -- options that may change until the first retrieval --------------------------------------------
    def _require_retrieval_equations(self) -> None:
        o = self.o
        if o.data_loss != "adl":
            return
        images = self.hr_images[: o.retrieval_images]
        rows = equation_count([im.shape for im in images], o.scale, o.kernel_size, RETRIEVAL_CROP)
        if rows < o.kernel_size**2:
            raise AdlError(f"--kernel-size {o.kernel_size}: the {len(images)} retrieval image(s) give {rows} LR pixel "
                           f"equation(s) for {o.kernel_size ** 2} unknowns; use a smaller --kernel-size, more "
                           f"--retrieval-images, or larger HR images")

    def _kernel_retrieved(self) -> bool:
        """Whether the saved state already holds an ADL kernel (a kernel written after the last
        checkpoint is redone on resume, so only the checkpoint counts)."""
        if not self.checkpoint_path.exists():
            return False
        try:
            ckpt = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception:  # load_checkpoint names the file and the fix
            return False
        return isinstance(ckpt, dict) and ckpt.get("kernel") is not None

    def check_folder(self) -> None:
        retrieval = set() if self._kernel_retrieved() else {"kernel_size", "retrieval_images"}
        self.resumable = RESUMABLE_OPTIONS | retrieval
        super().check_folder()

    def _record_retrieval_options(self) -> None:
        """config.json takes the new --kernel-size / --retrieval-images a resume was allowed to change,
        so that the next resume compares against what the kernel will really be retrieved with."""
        path = self.run_dir / "config.json"
        record = json.loads(path.read_text())
        keys = ("kernel_size", "retrieval_images")
        if any(record["options"].get(k) != self.record["options"][k] for k in keys):
            record["options"].update({k: self.record["options"][k] for k in keys})
            write_text(path, json.dumps(record, indent=2) + "\n")

    def _resident_images(self) -> tuple[ResidentImages, ResidentImages] | None:
        """Both image sets on the device when --sampling asks (auto: on CUDA, if they fit)."""
        o = self.o
        if o.sampling == "host" or (o.sampling == "auto" and self.device.type != "cuda"):
            return None
        need = ResidentImages.nbytes(self.hr_images) + ResidentImages.nbytes(self.lr_images)
        if o.sampling == "auto":
            free, _ = torch.cuda.mem_get_info(self.device)
            if need > free // RESIDENT_SHARE:
                log.warning("images take %.1f GiB, more than 1/%d of the GPU's free %.1f GiB: cutting patches "
                            "on the host", need / 2**30, RESIDENT_SHARE, free / 2**30)
                return None
        return ResidentImages(self.hr_images, self.device), ResidentImages(self.lr_images, self.device)

    def summary_extras(self) -> dict:
        return {"fast_path": {**self.fast.describe(), "sampling": "device" if self.resident else "host"}}

    # -- checkpoint contents -----------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "kernel": None if self.kernel is None else torch.from_numpy(self.kernel),
        }

    def restore(self, ckpt: dict) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        self.opt_D.load_state_dict(ckpt["opt_D"])
        if ckpt["kernel"] is not None:
            self.kernel = ckpt["kernel"].numpy()
            self.data_term.set_kernel(self.kernel)

    # -- ADL kernel --------------------------------------------------------------------------------
    def kernel_due(self, i: int) -> bool:
        o = self.o
        if o.data_loss != "adl" or i < o.warmup:
            return False
        return self.kernel is None or (i - o.warmup) % o.update_every == 0

    def retrieve_kernel(self) -> np.ndarray:
        """Eq. (6) on the current G over the first ``retrieval_images`` HR training images."""
        scale = self.o.scale
        images = self.hr_images[: self.o.retrieval_images]
        with torch.no_grad():
            kernel = retrieve_from_model(UnitRangeDownsampler(self.G, scale), images, scale, self.o.kernel_size,
                                         len(images), crop=RETRIEVAL_CROP, device=self.device)
        self.kernel = kernel
        self.data_term.set_kernel(kernel)
        for name in (f"kernel_{self.iteration}.npy", "kernel.npy"):
            with atomic_path(self.run_dir / name) as tmp:
                np.save(tmp, kernel)
        write_png(self.run_dir / "kernel.png", kernel_picture(kernel))
        return kernel

    # -- the loop -----------------------------------------------------------------------------------
    def batches(self):
        o = self.o
        if self.resident:  # the loader yields positions only; train_step cuts the patches on the device
            dataset = UnpairedPositions([im.shape for im in self.hr_images], [im.shape for im in self.lr_images],
                                        o.hr_patch, o.lr_patch, o.seed)
        else:
            dataset = UnpairedPatches(self.hr_images, self.lr_images, o.hr_patch, o.lr_patch, o.seed)
        return patch_loader(dataset, self.iteration, o.iterations, o.batch_size,
                            loader_workers(o.workers, self.device),
                            pin=self.device.type == "cuda")

    def before_step(self) -> None:
        if self.kernel_due(self.iteration):
            self.retrieve_kernel()

    def active_term(self, i: int) -> str:
        if self.o.data_loss == "adl" and i < self.o.warmup:
            return "lfl"  # Algorithm 1, lines 7–8: LFL during warm-up
        return self.o.data_loss

    def train_step(self, batch) -> torch.Tensor:
        """One iteration of Algorithm 1: update D once, then G once."""
        o, fast = self.o, self.fast
        term = self.active_term(self.iteration)
        self._terms_since_row.add(term)
        fast.step_begin()
        if self.resident:
            hr_images, lr_images = self.resident
            batch = hr_images.crop(batch[:, 0], o.hr_patch), lr_images.crop(batch[:, 1], o.lr_patch)
        hr, lr = (fast.layout(to_unit_range(b, self.device)) for b in batch)
        with fast.autocast():
            fake = apply_downsampler(self.run_G, hr, o.scale, straight_through=True).float()

        self.opt_D.zero_grad(set_to_none=True)
        with fast.autocast():
            real_logits, fake_logits = self.run_D(lr), self.run_D(fake.detach())
        loss_d = discriminator_loss(real_logits.float(), fake_logits.float())
        loss_d.backward()
        self.opt_D.step()

        self.opt_G.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)  # G's step needs D's input gradient only: skip its weight gradients
        with fast.autocast():
            adv_logits = self.run_D(fake)
        loss_adv = generator_adversarial_loss(adv_logits.float())
        loss_data = self.data_term(hr, fake, term)  # in fp32 outside autocast: a bf16 kernel would not sum to 1
        (o.alpha * loss_data + loss_adv).backward()
        self.D.requires_grad_(True)
        self.opt_G.step()
        return torch.stack([loss_d.detach(), loss_adv.detach(), loss_data.detach()])

    def row_extras(self) -> list:
        terms, self._terms_since_row = "+".join(sorted(self._terms_since_row)), set()
        return [terms]


def train_downsampler(options: DownsamplerOptions, run_dir: str | os.PathLike) -> Path:
    trainer = DownsamplerTrainer(options, run_dir)  # resolves and validates the options once
    o = trainer.o
    return trainer.run(o.iterations, o.log_every, o.checkpoint_every)
