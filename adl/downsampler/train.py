"""Algorithm 1: adversarial training of the downsampler G under a data term (method.md §6).

A run lives in one folder (RUN_DIR, see adl.runs): config.json, checkpoint.pt (G, D, both
optimisers, RNG states, the ADL kernel, the iteration), log.csv, and kernel_<it>.npy for each
retrieved ADL kernel with kernel.npy/kernel.png for the latest.

Running the same command on an existing RUN_DIR resumes from checkpoint.pt. On CPU the resumed
run is bit-identical to an uninterrupted one: the model RNG is used only at initialisation,
batches are a pure function of (seed, iteration) (adl.downsampler.patches), and ADL kernel refreshes happen at
fixed iterations from the same G.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from adl.atomic import atomic_path, write_text
from adl.choices import LR_SHAVE
from adl.device import resolve_device
from adl.downsampler.apply import (
    CHECKPOINT_KIND,
    UnitRangeDownsampler,
    apply_downsampler,
    downsample_image,
)
from adl.downsampler.losses import (
    DataTerm,
    discriminator_loss,
    generator_adversarial_loss,
)
from adl.downsampler.options import DownsamplerOptions
from adl.downsampler.patches import (
    ResidentImages,
    UnpairedPatches,
    UnpairedPositions,
    crop_sampler,
    load_images,
    loader_workers,
    patch_loader,
    to_unit_range,
)
from adl.downsampler.retrieval import equation_count, retrieve_from_model
from adl.errors import AdlError
from adl.fastpath import FastPath, resolve_fast_path
from adl.imageio import crop_to_scale, list_images, pair_by_stem, read_image, write_png
from adl.kernels import kernel_picture, resolve_kernel
from adl.metrics import finite_mean, kernel_similarity, psnr
from adl.nets.discriminator import build_discriminator
from adl.nets.downsampler import build_downsampler
from adl.runs import TrainingRun, data_fingerprint

log = logging.getLogger(__name__)

RETRIEVAL_CROP = 1000  # method.md §5: each retrieval image is cropped to its top-left 1000×1000
# Options that may change between a run and its resumption: they do not alter the result.
# Validation only reads G, so it may be added, changed or dropped on resume too.
RESUMABLE_OPTIONS = frozenset({"hr", "lr", "iterations", "checkpoint_every", "log_every", "device", "workers",
                               "precision", "compile", "sampling", "val_hr", "val_lr", "true_kernel", "val_every"})
# Options added by issue 16 after runs had started; their defaults do what those runs did.
ADDED_OPTIONS = ("patch_sampling", "disc_view", "disc_steps")
RESIDENT_SHARE = 4  # images go to the GPU only if they take at most 1/4 of its free memory




class DownsamplerTrainer(TrainingRun):
    """One run of Algorithm 1 up to ``options.iterations``."""

    kind = CHECKPOINT_KIND
    loss_names = ("loss_d", "loss_g_adv", "loss_data")
    # Validation columns stay empty on rows without a validation (or a refresh, for the last one).
    extra_columns = ("data_term", "val_lr_psnr", "val_kernel_similarity", "adl_kernel_similarity")
    resumable = RESUMABLE_OPTIONS
    added_options: ClassVar[dict[str, object]] = {
        f.name: f.default for f in dataclasses.fields(DownsamplerOptions) if f.name in ADDED_OPTIONS}

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
        self.validation = Validation.load(o, self.device)  # bad validation input is refused before the folder exists
        self.create_folder()
        self._record_retrieval_options()
        self.resident = self._resident_images()
        self._refreshed_kernel: np.ndarray | None = None  # retrieved since the last log row

        torch.manual_seed(o.seed)
        self.G = self.fast.prepare(build_downsampler(o.generator, o.width))
        self.D = self.fast.prepare(build_discriminator(o.disc_view, o.disc_width, o.disc_norm))
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
        require_retrieval_equations(self.hr_images, o, "HR")

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
        self.kernel = self._refreshed_kernel = kernel
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
            samplers = (crop_sampler(o.patch_sampling, self.hr_images, o.hr_patch),
                        crop_sampler(o.patch_sampling, self.lr_images, o.lr_patch))
            dataset = UnpairedPositions([im.shape for im in self.hr_images], [im.shape for im in self.lr_images],
                                        o.hr_patch, o.lr_patch, o.seed, samplers)
        else:
            dataset = UnpairedPatches(self.hr_images, self.lr_images, o.hr_patch, o.lr_patch, o.seed,
                                      o.patch_sampling)
        # One loader batch holds the disc_steps batches of an iteration, so batches stay a pure
        # function of (seed, iteration) and disc_steps 1 draws exactly what it always drew.
        return patch_loader(dataset, self.iteration, o.iterations, o.batch_size * o.disc_steps,
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
        """One iteration of Algorithm 1: update D (once, or --disc-steps times on batches of its
        own), then G once, on the last of those batches."""
        o, fast = self.o, self.fast
        term = self.active_term(self.iteration)
        self._terms_since_row.add(term)
        fast.step_begin()
        if self.resident:
            hr_images, lr_images = self.resident
            batch = hr_images.crop(batch[:, 0], o.hr_patch), lr_images.crop(batch[:, 1], o.lr_patch)
        hr_all, lr_all = (fast.layout(to_unit_range(b, self.device)) for b in batch)
        last = o.disc_steps - 1
        for n, (hr, lr) in enumerate(zip(hr_all.split(o.batch_size), lr_all.split(o.batch_size))):
            # Only the last batch's G(HR) is backpropagated (G's step): no graph is kept for the others.
            with fast.autocast(), torch.set_grad_enabled(n == last):
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

    def row_due(self) -> bool:
        return self.validation is not None and self.iteration % self.o.val_every == 0

    def row_extras(self) -> list:
        terms, self._terms_since_row = "+".join(sorted(self._terms_since_row)), set()
        psnr_value = similarity = adl_similarity = ""
        if self.row_due():
            lr_psnr, kernel_sim = self.validation.score(self.G)
            psnr_value = f"{lr_psnr:.4f}"
            similarity = "" if kernel_sim is None else f"{kernel_sim:.4f}"
        if self._refreshed_kernel is not None and self.validation is not None and self.validation.true_kernel is not None:
            adl_similarity = f"{kernel_similarity(self._refreshed_kernel, self.validation.true_kernel):.4f}"
        self._refreshed_kernel = None
        return [terms, psnr_value, similarity, adl_similarity]


def require_retrieval_equations(images: list[np.ndarray], o: DownsamplerOptions, source: str) -> None:
    """Refuse, before any training, a retrieval that its first ``retrieval_images`` images cannot determine."""
    chosen = images[: o.retrieval_images]
    rows = equation_count([im.shape for im in chosen], o.scale, o.kernel_size, RETRIEVAL_CROP)
    if rows < o.kernel_size**2:
        raise AdlError(f"--kernel-size {o.kernel_size}: the first {len(chosen)} {source} image(s) give {rows} LR pixel "
                       f"equation(s) for {o.kernel_size ** 2} unknowns; use a smaller --kernel-size, more "
                       f"--retrieval-images, or larger {source} images")


class Validation:
    """Table 1's metric during training: G(val HR) against the true val LR, and optionally the
    similarity of the kernel retrieved from G to the true kernel. The retrieval uses the first
    ``retrieval_images`` val HR images, as ADL's own retrieval does on the training images: at K = 40
    a float64 fit costs seconds per image on a CPU, and a validation must not outlast the training.

    It reads G under no_grad and draws no random numbers, so it never changes training.
    """

    def __init__(self, pairs: list[tuple[str, np.ndarray, np.ndarray]], true_kernel: np.ndarray | None,
                 scale: int, kernel_size: int, retrieval_images: int, device: torch.device):
        self.pairs, self.true_kernel = pairs, true_kernel
        self.scale, self.kernel_size, self.device = scale, kernel_size, device
        self.retrieval_images = retrieval_images

    @classmethod
    def load(cls, o: DownsamplerOptions, device: torch.device) -> "Validation | None":
        if o.val_hr is None:
            return None
        pairs = []
        for hr_path, lr_path in pair_by_stem(list_images(o.val_hr, what="--val-hr"),
                                             list_images(o.val_lr, what="--val-lr"), "--val-hr", "--val-lr"):
            hr, lr = crop_to_scale(read_image(hr_path), o.scale), read_image(lr_path)
            if lr.shape != (hr.shape[0] // o.scale, hr.shape[1] // o.scale, 3):
                raise AdlError(f"{lr_path}: {lr.shape[1]}x{lr.shape[0]} is not {hr_path.name}'s size / {o.scale} "
                               f"({hr.shape[1] // o.scale}x{hr.shape[0] // o.scale}); pass the true LR of --val-hr")
            if min(lr.shape[:2]) <= 2 * LR_SHAVE:
                raise AdlError(f"{lr_path}: {lr.shape[1]}x{lr.shape[0]} leaves nothing after shaving {LR_SHAVE} "
                               f"pixels per border; use larger validation images")
            pairs.append((hr_path.stem, hr, lr))
        true_kernel = None if o.true_kernel is None else resolve_kernel(o.true_kernel, o.scale)
        if true_kernel is not None:  # found now, not after the whole training
            require_retrieval_equations([hr for _, hr, _ in pairs], o, "--val-hr")
        return cls(pairs, true_kernel, o.scale, o.kernel_size, o.retrieval_images, device)

    def score(self, G: torch.nn.Module) -> tuple[float, float | None]:
        """(mean LR PSNR in dB, similarity of G's retrieved kernel to the true one or None)."""
        values = [psnr(downsample_image(G, hr, self.scale, self.device), lr, LR_SHAVE, name=name)
                  for name, hr, lr in self.pairs]
        lr_psnr = finite_mean(values)
        if self.true_kernel is None:
            return lr_psnr, None
        with torch.no_grad():
            kernel = retrieve_from_model(UnitRangeDownsampler(G, self.scale), [hr for _, hr, _ in self.pairs],
                                         self.scale, self.kernel_size, self.retrieval_images, crop=RETRIEVAL_CROP,
                                         device=self.device)
        return lr_psnr, kernel_similarity(kernel, self.true_kernel)


def train_downsampler(options: DownsamplerOptions, run_dir: str | os.PathLike) -> Path:
    trainer = DownsamplerTrainer(options, run_dir)  # resolves and validates the options once
    o = trainer.o
    return trainer.run(o.iterations, o.log_every, o.checkpoint_every)
