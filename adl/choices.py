"""Names the command line offers, kept free of heavy imports so that `adl --help`, `adl psnr`
or `adl table` start without loading torch."""

DATA_LOSSES = ("adl", "lfl", "lfl-gauss", "bicubic", "avgpool")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
SR_MODELS = ("edsr", "rrdb")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")  # fp16 training would need loss scaling; bf16 does not
INFER_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_CHOICES = ("auto", "off", "on", "cudagraphs")
SAMPLING_CHOICES = ("auto", "host", "device")
SCALES = (2, 4)

# Help texts of options that several commands share (adl.options declares each option once, per command).
DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} or cuda:N"
PRECISION_HELP = ("auto: fp32 on CPU; on CUDA low precision with the other speed levers (docs/performance.md). "
                  "fp32 is the exact path")
COMPILE_HELP = "torch.compile the networks (auto: on CUDA with low precision; cudagraphs adds CUDA graphs)"

# The discriminator's normalisation (adl.nets.discriminator): "instance" is what the official code trains
# with (method.md §3; src/train.py keeps --dis_norm Instance); "none" is a measured option (docs/fidelity.md).
DISC_NORMS = ("none", "instance")
# The downsampler network: "deep" is the paper's G; "linear" is one learnable kernel (a diagnostic).
GENERATORS = ("deep", "linear")
