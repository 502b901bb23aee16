"""The options of ``adl train-downsampler``, free of torch: the workflow checks a config's
``downsampler.options`` against them before any job runs."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from adl.choices import (
    COMPILE_CHOICES,
    COMPILE_HELP,
    DATA_LOSSES,
    DEVICE_HELP,
    DISC_NORMS,
    DISC_VIEWS,
    GENERATORS,
    PATCH_SAMPLINGS,
    PRECISION_HELP,
    RETRIEVAL_IMAGES,
    SAMPLING_CHOICES,
    SCALES,
    TRAIN_PRECISIONS,
)
from adl.errors import UsageError
from adl.kernels import default_kernel_size, fits_scale
from adl.options import (
    check_fields,
    device_name,
    non_negative_float,
    option,
    positive_float,
)

log = logging.getLogger(__name__)

MIN_DISC_PATCH = 32  # four stride-2 reflection-padded layers, then a 2×2 conv


@dataclass
class DownsamplerOptions:
    """The options of ``adl train-downsampler``; ``None`` means "derive from method.md §6"."""

    hr: str = option(help="folder of HR images")
    lr: str = option(help="folder of (unpaired) target LR images")
    scale: int = option(2, "2, or 4 for G applied twice", choices=SCALES)
    data_loss: str = option("adl", "data term", choices=DATA_LOSSES)
    epoch_length: int = option(1741, "iterations per epoch", minimum=1)
    iterations: int | None = option(None, "total iterations (default 80 epochs)", minimum=1)
    batch_size: int = option(24, "patches per batch", minimum=1)
    lr_patch: int = option(64, "LR crop size", minimum=1)
    hr_patch: int | None = option(None, "HR crop size (default lr-patch × scale)", minimum=1)
    alpha: float | None = option(None, "data-term weight (default 100 for adl, 200 otherwise)",
                                 parse=non_negative_float)
    warmup: int | None = option(None, "ADL: LFL iterations before the first retrieval (default 10 epochs)", minimum=0)
    update_every: int | None = option(None, "ADL: iterations between retrievals (default 10 epochs)", minimum=1)
    retrieval_images: int = option(RETRIEVAL_IMAGES, "ADL: HR images per retrieval", minimum=1)
    kernel_size: int | None = option(None, "ADL: retrieved kernel size (default 10 × scale)", minimum=1)
    width: int = option(64, "G feature width", minimum=1)
    generator: str = option("deep", "deep: the paper's G; linear: one learnable kernel, a diagnostic of the "
                                    "adversarial pipeline (docs/fidelity.md)", choices=GENERATORS)
    disc_width: int = option(64, "D base width", minimum=1)
    disc_norm: str = option("instance", "D's normalisation: instance, as the paper trains it (method.md §3), "
                                        "or none (a measured option; docs/conventions.md)", choices=DISC_NORMS)
    patch_sampling: str = option("uniform", "where HR and LR patches are cut: uniform (the paper), or texture: "
                                            "with probability proportional to the crop's mean gradient magnitude, "
                                            "as KernelGAN crops (docs/fidelity.md, issue 16)",
                                 choices=PATCH_SAMPLINGS)
    disc_view: str = option("paper", "D's view: paper (method.md §3), or local: a 7×7 receptive field per logit, "
                                     "as KernelGAN's D (a diagnostic option; docs/fidelity.md, issue 16)",
                            choices=DISC_VIEWS)
    disc_steps: int = option(1, "D updates per G update, each on its own batch (the paper: 1; issue 16's lead, "
                                "docs/fidelity.md)", minimum=1)
    lr_rate: float = option(5e-5, "Adam learning rate", parse=positive_float)
    seed: int = option(0, "seed of initialisation and patch sampling", minimum=0)
    device: str = option("auto", DEVICE_HELP, parse=device_name)
    checkpoint_every: int | None = option(None, "iterations between checkpoints (default 1 epoch)", minimum=1)
    log_every: int = option(100, "iterations per log.csv row", minimum=1)
    workers: int | None = option(None, "DataLoader worker processes (default 0 on CPU, 4 on CUDA)", minimum=0)
    precision: str = option("auto", PRECISION_HELP, choices=TRAIN_PRECISIONS)
    compile: str = option("auto", COMPILE_HELP, choices=COMPILE_CHOICES)
    sampling: str = option("auto", "where patches are cut: device keeps the images on the GPU (auto: on CUDA, if "
                                   "they fit)", choices=SAMPLING_CHOICES)
    val_hr: str | None = option(None, "validation HR folder: log.csv gets the LR PSNR of G(val HR) against "
                                      "--val-lr (shave 8)")
    val_lr: str | None = option(None, "the true LR of --val-hr, matched by file name")
    true_kernel: str | None = option(None, "k0..k4 or a .npy kernel: also log the similarity to it of the kernel "
                                           "retrieved from G on the first --retrieval-images val HR images, and of "
                                           "each ADL kernel")
    val_every: int | None = option(None, "iterations between validations (default --log-every)", minimum=1)

    def resolved(self) -> "DownsamplerOptions":
        """The options with every derived default filled in; refuses values that no run could use."""
        check_fields(self)
        o = dataclasses.replace(self)
        e = o.epoch_length
        o.iterations = 80 * e if o.iterations is None else o.iterations
        o.hr_patch = o.lr_patch * o.scale if o.hr_patch is None else o.hr_patch
        o.alpha = (100.0 if o.data_loss == "adl" else 200.0) if o.alpha is None else float(o.alpha)
        o.warmup = 10 * e if o.warmup is None else o.warmup
        o.update_every = 10 * e if o.update_every is None else o.update_every
        o.kernel_size = default_kernel_size(o.scale) if o.kernel_size is None else o.kernel_size
        o.checkpoint_every = e if o.checkpoint_every is None else o.checkpoint_every
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
        if not fits_scale(o.kernel_size, o.scale):
            raise UsageError(f"--kernel-size {o.kernel_size}: must be {'even' if o.scale % 2 == 0 else 'odd'} at scale {o.scale}")
        if (o.val_hr is None) != (o.val_lr is None):
            raise UsageError("--val-hr and --val-lr: give both folders, or neither")
        if o.val_hr is None and (o.true_kernel is not None or o.val_every is not None):
            raise UsageError("--true-kernel and --val-every: need --val-hr and --val-lr")
        o.val_every = o.log_every if o.val_every is None and o.val_hr is not None else o.val_every
        return o
