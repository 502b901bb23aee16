"""The options of ``adl train-sr``, free of torch: the workflow checks a config's ``sr.options``
against them before any job runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from adl.atomic import file_sha256
from adl.choices import (
    COMPILE_CHOICES,
    COMPILE_HELP,
    DEVICE_HELP,
    PRECISION_HELP,
    SCALES,
    SR_DEFAULT_SIZES,
    SR_MODELS,
    TRAIN_PRECISIONS,
)
from adl.errors import AdlError, UsageError
from adl.imageio import list_images
from adl.options import (
    check_fields,
    device_name,
    non_negative_float,
    option,
    positive_float,
)

SOURCE_KINDS = ("bicubic", "kernel", "downsampler", "pairs", "shards")


@dataclass(frozen=True)
class LRSource:
    kind: str
    argument: str = ""

    @classmethod
    def parse(cls, spec: str) -> "LRSource":
        kind, _, argument = spec.partition(":")
        if kind not in SOURCE_KINDS:
            raise AdlError(f"--lr-source {spec}: unknown source; use bicubic, kernel:{{k0..k4|K.npy}}, "
                           f"downsampler:PATH, pairs:DIR or shards:DIR")
        if (kind == "bicubic") != (argument == ""):
            raise AdlError(f"--lr-source {spec}: " + ("bicubic takes no argument" if kind == "bicubic"
                                                       else f"{kind}: needs an argument, e.g. {kind}:PATH"))
        return cls(kind, argument)

    def fingerprint(self) -> str:
        """What identifies the LR data beyond the spec string: the file contents it depends on."""
        if self.kind == "downsampler" or (self.kind == "kernel" and Path(self.argument).is_file()):
            path = Path(self.argument)
            path = path / "checkpoint.pt" if path.is_dir() else path
            return file_sha256(path) if path.is_file() else ""
        if self.kind == "pairs":
            from adl.runs import data_fingerprint

            return data_fingerprint(list_images(self.argument, what="--lr-source pairs:"))
        if self.kind == "shards":
            from adl.shards.format import MANIFEST

            manifest = Path(self.argument) / MANIFEST
            return file_sha256(manifest) if manifest.is_file() else ""
        return ""


@dataclass
class SROptions:
    """The options of ``adl train-sr`` (defaults: the EDSR reference of method.md §7)."""

    hr: str | None = option(help="folder of HR training images (not with shards:DIR)", required=False)
    lr_source: str = option(help="bicubic | kernel:{k0..k4|K.npy} | downsampler:RUN_OR_CHECKPOINT | pairs:DIR | "
                                 "shards:DIR")
    scale: int = option(2, "SR scale", choices=SCALES)
    model: str = option("edsr", "SR network", choices=SR_MODELS)
    iterations: int = option(300_000, "total iterations", minimum=1)
    batch_size: int = option(16, "patches per batch", minimum=1)
    hr_patch: int = option(192, "HR crop size", minimum=1)
    lr_rate: float = option(1e-4, "Adam learning rate", parse=positive_float)
    decay_at: int = option(200_000, "iteration at which the learning rate is halved", minimum=0)
    n_feats: int | None = option(None, "features (default 64)", minimum=1)
    n_blocks: int | None = option(None, "residual blocks (default 16 for edsr, 23 for rrdb)", minimum=1)
    flips: bool = option(True, "no random flips/rotations")
    seed: int = option(0, "seed of initialisation and patch sampling", minimum=0)
    device: str = option("auto", DEVICE_HELP, parse=device_name)
    precision: str = option("auto", PRECISION_HELP, choices=TRAIN_PRECISIONS)
    compile: str = option("auto", COMPILE_HELP, choices=COMPILE_CHOICES)
    workers: int | None = option(None, "DataLoader worker processes (default 0 on CPU, 4 on CUDA)", minimum=0)
    checkpoint_every: int = option(1000, "iterations between checkpoints", minimum=1)
    log_every: int = option(100, "iterations per log.csv row", minimum=1)
    val_hr: str | None = option(None, "held-out HR folder for periodic validation PSNR")
    val_lr: str | None = option(None, "its LR folder (same names)")
    val_every: int = option(0, "iterations between validations (0: never)", minimum=0)
    perceptual: bool = option(False, "eq. (9): VGG-19 conv5_4 L1 + β·GAN")
    vgg_weights: str | None = option(None, "torchvision VGG-19 state dict (.pth) for --perceptual")
    beta: float = option(0.02, "GAN weight of --perceptual", parse=non_negative_float)
    disc_width: int = option(64, "discriminator width for --perceptual", minimum=1)

    def resolved(self) -> "SROptions":
        """The options with the network's default size filled in; refuses values that no run could use."""
        check_fields(self)
        o = dataclasses.replace(self)
        o.n_feats, o.n_blocks = o.n_feats or SR_DEFAULT_SIZES[o.model][0], o.n_blocks or SR_DEFAULT_SIZES[o.model][1]
        if o.hr_patch % o.scale:
            raise UsageError(f"--hr-patch {o.hr_patch}: must be a multiple of the scale {o.scale}")
        if (o.val_hr is None) != (o.val_lr is None):
            raise UsageError("--val-hr and --val-lr: give both folders, or neither")
        if o.val_every and o.val_hr is None:
            raise UsageError("--val-every: needs --val-hr and --val-lr")
        if o.perceptual and not o.vgg_weights:
            raise UsageError("--perceptual: needs --vgg-weights PATH (a torchvision VGG-19 state dict; nothing is downloaded)")
        if o.perceptual and o.hr_patch // 16 < 2:
            raise UsageError(f"--hr-patch {o.hr_patch}: the perceptual discriminator needs at least 32")
        if LRSource.parse(o.lr_source).kind != "shards" and not o.hr:
            raise UsageError(f"--hr: needed with --lr-source {o.lr_source} (only shards:DIR brings its own HR)")
        return o
