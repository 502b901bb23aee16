"""Stage 2: training an SR network on (LR, HR) pairs (paper §3.5, eq. 8 and 9; method.md §7).

The run folder, resume and signal handling are those of every trainer (adl.runs). The L1 run
follows the EDSR reference: Adam 1e-4, batch 16, HR patch 192, lr halved once (at 200k of 300k
iterations by default). ``--perceptual`` trains with eq. (9) instead: VGG-19 conv5_4 feature L1
plus β·L_adv against a patch discriminator.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adl.atomic import file_sha256
from adl.choices import sr_shave
from adl.degradation import check_pair
from adl.device import resolve_device
from adl.downsampler.patches import load_images, loader_workers, patch_loader
from adl.fastpath import resolve_fast_path
from adl.imageio import list_images, pair_by_stem, read_image
from adl.metrics import finite_mean, psnr
from adl.runs import TrainingRun, data_fingerprint
from adl.sr.model import CHECKPOINT_KIND, build_sr_model
from adl.sr.options import SROptions
from adl.sr.pairs import (
    LRSource,
    PairedPatches,
    ShardPatches,
    make_lr_images,
)

log = logging.getLogger(__name__)

RESUMABLE_OPTIONS = frozenset({"hr", "iterations", "checkpoint_every", "log_every", "device", "workers",
                               "val_hr", "val_lr", "val_every", "vgg_weights", "precision", "compile"})








class SRTrainer(TrainingRun):
    kind = CHECKPOINT_KIND
    resumable = RESUMABLE_OPTIONS

    def __init__(self, options: SROptions, run_dir: str | os.PathLike):
        o = self.o = options.resolved()
        self.loss_names = ("loss_vgg", "loss_adv", "loss_d") if o.perceptual else ("loss_l1",)
        self.extra_columns = ("lr", "val_psnr")
        device = resolve_device(o.device)
        self.fast = fast = resolve_fast_path(o.precision, o.compile, device, training=True)
        source = LRSource.parse(o.lr_source)
        hr_paths = [] if source.kind == "shards" else list_images(o.hr, what="--hr")
        fingerprints = {"hr_fingerprint": ("--hr", data_fingerprint(hr_paths)),
                        "lr_fingerprint": ("--lr-source", source.fingerprint())}
        if o.perceptual:  # the path may move between resumes; the weights may not change
            vgg = Path(o.vgg_weights)
            fingerprints["vgg_fingerprint"] = ("--vgg-weights", file_sha256(vgg) if vgg.is_file() else "")
        super().__init__(run_dir, dataclasses.asdict(o), fingerprints,
                         device, f"train-sr ({o.model} ×{o.scale}, {source.kind}, {fast.precision})")
        self.check_folder()
        if source.kind == "shards":
            self.dataset = ShardPatches(source.argument, o.hr_patch // o.scale, o.scale, o.seed, o.flips)
        else:
            hr_images = load_images(hr_paths, o.hr_patch, "HR images", "--hr-patch")
            lr_images = make_lr_images(source, hr_paths, hr_images, o.scale, device)
            self.dataset = PairedPatches(lr_images, hr_images, o.hr_patch // o.scale, o.scale, o.seed, o.flips)
        self.validation = self._load_validation()
        self.vgg = None
        if o.perceptual:
            from adl.nets import load_vgg19_features

            self.vgg = fast.compiled(fast.prepare(load_vgg19_features(o.vgg_weights)))
        self.create_folder()

        torch.manual_seed(o.seed)
        self.model = fast.prepare(build_sr_model(o.model, o.scale, o.n_feats, o.n_blocks))
        self.run_model = fast.compiled(self.model)
        self.opt = fast.adam(self.model.parameters(), o.lr_rate)
        self.schedule = torch.optim.lr_scheduler.MultiStepLR(self.opt, milestones=[o.decay_at], gamma=0.5)
        self.D = self.run_D = self.opt_D = self.schedule_D = None
        if o.perceptual:
            from adl.nets import Discriminator

            self.D = fast.prepare(Discriminator(o.disc_width, "instance"))
            self.run_D = fast.compiled(self.D)
            self.opt_D = fast.adam(self.D.parameters(), o.lr_rate)
            self.schedule_D = torch.optim.lr_scheduler.MultiStepLR(self.opt_D, milestones=[o.decay_at], gamma=0.5)
        self.load_checkpoint()

    def _load_validation(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        o = self.o
        if o.val_hr is None:
            return []
        pairs = pair_by_stem(list_images(o.val_hr, what="--val-hr"), list_images(o.val_lr, what="--val-lr"),
                             "--val-hr", "--val-lr")
        out = []
        for hr_path, lr_path in pairs:
            from adl.degradation import crop_to_scale

            hr, lr = crop_to_scale(read_image(hr_path), o.scale), read_image(lr_path)
            check_pair(hr, lr, o.scale, hr_path, lr_path)
            out.append((hr_path.stem, lr, hr))
        return out

    # -- checkpoint contents -----------------------------------------------------------------------
    def state(self) -> dict:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                 "schedule": self.schedule.state_dict()}
        if self.D is not None:
            state.update(D=self.D.state_dict(), opt_D=self.opt_D.state_dict(), schedule_D=self.schedule_D.state_dict())
        return state

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["opt"])
        self.schedule.load_state_dict(ckpt["schedule"])
        if self.D is not None:
            self.D.load_state_dict(ckpt["D"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
            self.schedule_D.load_state_dict(ckpt["schedule_D"])

    # -- the loop ----------------------------------------------------------------------------------
    def batches(self):
        o = self.o
        return patch_loader(self.dataset, self.iteration, o.iterations, o.batch_size,
                            loader_workers(o.workers, self.device),
                            pin=self.device.type == "cuda")

    def summary_extras(self) -> dict:
        return {"fast_path": self.fast.describe()}

    def train_step(self, batch) -> torch.Tensor:
        self.fast.step_begin()
        lr, hr = (self.fast.layout(b.to(self.device, non_blocking=True).float().div_(255.0)) for b in batch)
        if self.o.perceptual:
            losses = self._perceptual_step(lr, hr)
        else:
            with self.fast.autocast():
                sr = self.run_model(lr)
            loss = F.l1_loss(sr.float(), hr)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses = loss.detach()[None]
        self.schedule.step()
        if self.schedule_D is not None:
            self.schedule_D.step()
        return losses

    def _perceptual_step(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Eq. (9): D on (HR, SR), then P on VGG conv5_4 L1 + β·BCE(D(SR), 1)."""
        from adl.downsampler.losses import (
            discriminator_loss,
            generator_adversarial_loss,
        )

        with self.fast.autocast():
            sr = self.run_model(lr)
            self.opt_D.zero_grad(set_to_none=True)
            loss_d = discriminator_loss(self.run_D(hr * 2 - 1).float(), self.run_D(sr.detach() * 2 - 1).float())
        loss_d.backward()
        self.opt_D.step()
        with self.fast.autocast():
            loss_vgg = F.l1_loss(self.vgg(sr).float(), self.vgg(hr).float())
            loss_adv = generator_adversarial_loss(self.run_D(sr * 2 - 1).float())
        self.opt.zero_grad(set_to_none=True)
        (loss_vgg + self.o.beta * loss_adv).backward()
        self.opt.step()
        return torch.stack([loss_vgg.detach(), loss_adv.detach(), loss_d.detach()])

    def validate(self) -> float:
        """Mean PSNR (RGB, shave s + 6) of the model on the validation pairs."""
        from adl.tiling import upscale_image

        shave = sr_shave(self.o.scale)
        scores = [psnr(upscale_image(self.model, lr, self.o.scale, self.device), hr, shave, name=name)
                  for name, lr, hr in self.validation]
        return finite_mean(scores)

    def row_due(self) -> bool:
        return bool(self.o.val_every and self.validation and self.iteration % self.o.val_every == 0)

    def row_extras(self) -> list:
        return [f"{self.schedule.get_last_lr()[0]:.3g}", f"{self.validate():.4f}" if self.row_due() else ""]


def train_sr(options: SROptions, run_dir: str | os.PathLike) -> Path:
    trainer = SRTrainer(options, run_dir)  # resolves and validates the options once
    o = trainer.o
    return trainer.run(o.iterations, o.log_every, o.checkpoint_every)
