"""The options of ``adl generate``, free of torch: the workflow checks a config's ``generate``
section against them before any job runs."""

from __future__ import annotations

from dataclasses import dataclass

from adl.choices import (
    COMPILE_CHOICES,
    COMPILE_HELP,
    DEVICE_HELP,
    INFER_PRECISIONS,
    NOISE_MODES,
    SCALES,
)
from adl.errors import UsageError
from adl.options import byte_size, check_fields, device_name, option
from adl.shards.backends import BACKENDS
from adl.shards.format import COMPRESSION, COMPRESSION_LEVEL, COMPRESSIONS
from adl.shards.parts import parse_part

FORMATS = ("h5", "png", "lmdb")


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
    gzip_level: int = option(COMPRESSION_LEVEL, "0-9 with --compression gzip", minimum=0, maximum=9)
    part: str | None = option(None, "write only the I-th of N parts (its own --output); adl merge-shards joins them",
                              metavar="I/N")
    scale: int | None = option(None, "2 or 4 (default: the model's)", choices=SCALES)
    backend: str = option("auto", "auto: ONNX Runtime for a .onnx model, torch for a checkpoint", choices=BACKENDS)
    device: str = option("auto", DEVICE_HELP, parse=device_name)
    max_memory: int | None = option(None, "host memory G may use, e.g. 2G: two images run at once only if both "
                                          "fit, and an image that alone would not is refused (skipped with "
                                          "--on-error skip); default: half the physical memory (docs/performance.md)",
                                    parse=byte_size, metavar="BYTES")
    workers: int = option(0, "decoding threads; 0: one per usable CPU, at most 8", minimum=0)
    seed: int = option(0, "seed of the patch positions")
    format: str = option("h5", "h5: HDF5 shards (docs/shards.md); png: BasicSR paired folders; lmdb: BasicSR's LMDB pair", choices=FORMATS)
    precision: str = option("auto", "torch backend: fp32 on CPU, fp16 and torch.compile on CUDA (docs/performance.md)",
                            choices=INFER_PRECISIONS)
    compile: str = option("auto", COMPILE_HELP, choices=COMPILE_CHOICES)
    writers: int = option(1, "processes that compress and write shards; 0: a thread of this process",
                         minimum=0)
    on_error: str = option("stop", "an unreadable or too small HR image: stop, or skip it (listed in the manifest)",
                           choices=ON_ERROR)
    restart: bool = option(False, "discard what an earlier generation with other settings left in --output")
    noise: str | None = option(None, "noise model of the LR set (adl noise-model): a sample of it is added to each "
                                     "IDown before rounding (docs/noise.md)", metavar="FILE")
    noise_mode: str = option("fit", "with --noise: fit draws Poisson-Gaussian noise (variance a*I + b per channel); "
                                    "pool tiles residual patches of the LR set (RealSR)", choices=NOISE_MODES)
    jpeg_like: str | None = option(None, "JPEG LR images (folder, list or glob): each IDown is JPEG-encoded with their "
                                         "most common quantisation tables (docs/noise.md)", metavar="LR")

    def check(self) -> None:
        """Refuse values that no generation could use; the fields' own ranges are checked by check_fields."""
        check_fields(self)
        if self.full_images and self.format != "png":
            raise UsageError("--full-images: whole images have different sizes and are written as PNG folders; "
                             "add --format png")
        if self.shard_bytes is not None and self.shard_size != GenerateOptions.shard_size:
            raise UsageError("--shard-size and --shard-bytes: give one of them")
        if self.part is not None:
            parse_part(self.part)
        if self.part is not None and self.format != "h5":
            raise UsageError(f"--part {self.part}: parts split HDF5 shards; --format {self.format} output is written "
                             f"by one run")
