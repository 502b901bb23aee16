"""The project's vocabulary: every name and constant that more than one module (or the workflow)
uses has its one home here. Kept free of heavy imports so that `adl --help`, `adl psnr`, `adl table`
and the workflow's config check start without loading torch. tests/test_layout.py checks that the
workflow's schema and wildcard constraints agree with it.
"""

DATA_LOSSES = ("adl", "lfl", "lfl-gauss", "bicubic", "avgpool")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
SR_MODELS = ("edsr", "rrdb")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")  # fp16 training would need loss scaling; bf16 does not
INFER_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_CHOICES = ("auto", "off", "on", "cudagraphs")
SAMPLING_CHOICES = ("auto", "host", "device")
SCALES = (2, 4)  # G is a ×2 network applied once or twice; EDSR/RRDB upsample by 2 or 4
KERNEL_NAMES = ("k0", "k1", "k2", "k3", "k4")  # adl.kernels.synthetic_kernel (method.md §1)
SR_DEFAULT_SIZES = {"edsr": (64, 16), "rrdb": (64, 23)}  # (features, blocks) of method.md §7
LR_SHAVE = 8  # method.md §1: Table 1 compares LR images after shaving 8 LR pixels per border
DEFAULT_TILE = 256  # LR pixels per tile of SR inference: the core of each tile, before context is added
RETRIEVAL_IMAGES = 50  # HR images per kernel retrieval (method.md §5)


def sr_shave(scale: int) -> int:
    """Border pixels left out of SR PSNR/SSIM: scale + 6 (method.md §1)."""
    return scale + 6


# Help texts of options that several commands share (adl.options declares each option once, per command).
DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} or cuda:N"
PRECISION_HELP = ("auto: fp32 on CPU; on CUDA low precision with the other speed levers (docs/performance.md). "
                  "fp32 is the exact path")
COMPILE_HELP = "torch.compile the networks (auto: on CUDA with low precision; cudagraphs adds CUDA graphs)"

# The discriminator's normalisation (adl.nets.discriminator): "instance" is what the official code trains
# with (method.md §3; src/train.py keeps --dis_norm Instance); "none" is a measured option (docs/fidelity.md).
DISC_NORMS = ("none", "instance")
# D's view: the paper's D (about the whole patch per logit), or local: a 7×7 receptive field, as KernelGAN's D.
DISC_VIEWS = ("paper", "local")
# Where the downsampler cuts its training patches: uniformly, or with probability following the
# image's gradient magnitude (KernelGAN's crops; docs/fidelity.md, issue 16).
PATCH_SAMPLINGS = ("uniform", "texture")
# The sample protocol's photo sets, all bundled with installed packages (adl.data.sample_data).
PHOTO_SETS = ("skimage", "smooth", "varied")
# The downsampler network: "deep" is the paper's G; "linear" is one learnable kernel (a diagnostic).
GENERATORS = ("deep", "linear")
# Noisy LR sets (docs/noise.md): how `adl denoise` denoises them, and which noise model `generate --noise` samples.
DENOISE_METHODS = ("bm3d", "nl-means", "wavelet")
NOISE_MODES = ("fit", "pool")  # fit: variance = a·I + b per channel; pool: residual patches of the LR set
