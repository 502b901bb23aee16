"""The ``adl`` command line: a thin layer that parses options and calls the library. The ground
floor's commands are registered here; each stage registers its own (adl/<stage>/cli.py).

Errors the user can fix (AdlError) become one line on stderr and exit status 1; usage errors
exit 2; an interrupted training run exits 128+signal after saving its checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

import adl
from adl.choices import KERNEL_NAMES
from adl.command import (
    OneLineParser,
    OptionsParser,
    device_option,
    scale,
    tag_option,
    tags,
)
from adl.data import cli as data_cli
from adl.downsampler import cli as downsampler_cli
from adl.errors import AdlError
from adl.noise_law import LAW_FORMS, NoiseLaw
from adl.options import non_negative_int
from adl.report import cli as report_cli
from adl.shards import cli as shards_cli
from adl.sr import cli as sr_cli

log = logging.getLogger("adl")
STAGES = (data_cli, downsampler_cli, shards_cli, sr_cli, report_cli)  # in the workflow's order


# -- the ground floor's subcommands ----------------------------------------------------------------
def cmd_kernels(args) -> None:
    from adl.kernels import write_kernels

    write_kernels(args.output, args.scale)
    print(f"wrote {', '.join(KERNEL_NAMES)} (×{args.scale}) to {args.output}")


def cmd_degrade(args) -> None:
    from adl.degradation import degrade_folder
    from adl.device import resolve_device
    from adl.kernels import resolve_kernel

    kernel = resolve_kernel(args.kernel, args.scale)
    noise = NoiseLaw.parse(args.noise) if args.noise else None
    count = degrade_folder(args.input, args.output, kernel, args.scale, resolve_device(args.device), noise, args.seed)
    print(f"wrote {count} LR image(s) to {args.output}" + (f" with {args.noise} noise (seed {args.seed})" if noise else ""))


def cmd_psnr(args) -> None:
    from adl.metrics import psnr_report

    mean = psnr_report(args.pred, args.target, args.shave, args.csv, args.json, tags(args))
    print(f"{mean:.4f}")


def cmd_kernel_similarity(args) -> None:
    from adl.kernels import load_kernel
    from adl.metrics import kernel_similarity

    labels = tags(args)
    a, b = (load_kernel(p, args.scale) for p in (args.a, args.b))
    similarity = kernel_similarity(a, b)
    if args.json:
        import json

        from adl.atomic import write_text

        write_text(args.json, json.dumps({"tags": labels, "similarity": similarity, "a": args.a, "b": args.b},
                                         indent=2) + "\n")
    print(f"{similarity:.6f}")


def _register_ground(sub) -> None:
    p = sub.add_parser("kernels", help="write the synthetic kernels k0–k4 as .npy and .png")
    p.add_argument("--scale", type=scale, required=True)
    p.add_argument("--output", required=True, help="folder")
    p.set_defaults(func=cmd_kernels)

    p = sub.add_parser("degrade", help="(HR ∗ k)↓s for every image of a folder")
    p.add_argument("--input", required=True, help="folder of HR images")
    p.add_argument("--output", required=True, help="folder for LR PNGs (same names)")
    p.add_argument("--scale", type=scale, required=True)
    p.add_argument("--kernel", required=True, help=f"{'|'.join(KERNEL_NAMES)} or a path to a .npy kernel")
    p.add_argument("--noise", help=f"add noise of this law before rounding: {LAW_FORMS} (default none)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise (default 0)")
    device_option(p)
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("psnr", help="mean RGB PSNR between two folders paired by name")
    p.add_argument("--pred", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--shave", type=non_negative_int, required=True, help="border pixels left out on each side")
    p.add_argument("--csv", help="write per-image values here")
    p.add_argument("--json", help="write the mean, per-image values and tags here (for `adl table`)")
    tag_option(p)
    p.set_defaults(func=cmd_psnr)

    p = sub.add_parser("kernel-similarity", help="max normalised cross-correlation of two kernels")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--scale", type=scale, default=2, help="scale the kernels are checked against (default 2)")
    p.add_argument("--json", help="write the similarity, both paths and tags here (for `adl table`)")
    tag_option(p)
    p.set_defaults(func=cmd_kernel_similarity)


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="adl", description="Adaptive downsampling models for real-world super-resolution.")
    parser.add_argument("--version", action="version", version=f"adl {adl.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OptionsParser)
    _register_ground(sub)
    for stage in STAGES:
        stage.register(sub)
    _quiet_anywhere(sub)
    return parser


def _quiet_anywhere(sub) -> None:
    """-q is accepted after the subcommand too; SUPPRESS keeps a -q given before it."""
    for p in sub.choices.values():
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only warnings and errors (also accepted before the command)")
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _quiet_anywhere(action)


WRITES_OUTPUT_FOLDER = frozenset({"generate", "merge-shards", "train-downsampler", "train-sr", "degrade", "downsample",
                                  "upscale"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own info messages only; libraries (onnx, torch) keep to warnings.
    logging.basicConfig(level=logging.WARNING, format="adl: %(message)s")
    logging.getLogger("adl").setLevel(logging.WARNING if args.quiet else logging.INFO)
    from adl.progress import set_quiet

    set_quiet(args.quiet)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from adl.folder_lock import locked_folder

    # Commands that write into --output hold it for their whole run: two never write one folder.
    lock = locked_folder(args.output) if args.command in WRITES_OUTPUT_FOLDER else contextlib.nullcontext()
    try:
        with logging_redirect_tqdm(), lock:
            args.func(args)
    except AdlError as exc:
        for line in str(exc).splitlines():  # several problems: one line each, each with the prefix
            print(f"adl {args.command}: error: {line}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print(f"adl {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a write refused by the system (permissions, full disk, a path that is in the way)
        where = exc.filename2 or exc.filename
        what = f"{where}: {exc.strerror}" if where and exc.strerror else str(exc).replace("\n", " ")
        print(f"adl {args.command}: error: {what}; check the path, its permissions and free space", file=sys.stderr)
        return 1
    return 0
