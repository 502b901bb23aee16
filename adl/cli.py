"""The ``adl`` command line: a thin layer that parses options and calls the library.

Errors the user can fix (AdlError) become one line on stderr and exit status 1; usage errors
exit 2; an interrupted training run exits 128+signal after saving its checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

import adl
from adl.errors import AdlError, UsageError
from adl.options import device_name as _device
from adl.options import integer as _integer
from adl.options import non_negative_int as _non_negative_int
from adl.options import positive_int as _positive_int

log = logging.getLogger("adl")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on error; one line naming the option is enough."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class OptionsParser(OneLineParser):
    """A subcommand whose options are the fields of a dataclass (adl.options). The module holding
    the dataclass is imported only when that subcommand is parsed, so that `adl psnr` or the ONNX
    Runtime path of `adl generate` never import torch."""

    def __init__(self, *args, options: str | None = None, extra=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = (options, extra) if options else None

    def populate(self) -> None:
        if self._pending:
            (path, extra), self._pending = self._pending, None
            from adl.options import add_options

            add_options(self, _dataclass(path))
            if extra:
                extra(self)

    def parse_known_args(self, args=None, namespace=None):
        self.populate()
        return super().parse_known_args(args, namespace)


def _dataclass(path: str):
    """"adl.downsampler.options:DownsamplerOptions" -> the class."""
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _scale(text: str) -> int:
    value = _integer(text)
    if value not in (2, 4):
        raise argparse.ArgumentTypeError(f"{text}: scale must be 2 or 4")
    return value


# -- subcommands ---------------------------------------------------------------------------------
def cmd_kernels(args) -> None:
    import numpy as np

    from adl.atomic import atomic_path
    from adl.imageio import write_png
    from adl.kernels import KERNEL_NAMES, kernel_picture, synthetic_kernel

    out = Path(args.output)
    for name in KERNEL_NAMES:
        k = synthetic_kernel(name, args.scale)
        with atomic_path(out / f"{name}.npy") as tmp:
            np.save(tmp, k)
        write_png(out / f"{name}.png", kernel_picture(k))
    print(f"wrote {', '.join(KERNEL_NAMES)} (×{args.scale}) to {out}")


def cmd_degrade(args) -> None:
    from adl.degradation import degrade
    from adl.device import resolve_device
    from adl.imageio import list_images, read_image, require_unique_stems, write_png
    from adl.kernels import resolve_kernel
    from adl.progress import progress

    kernel = resolve_kernel(args.kernel, args.scale)
    device = resolve_device(args.device)
    paths = require_unique_stems(list_images(args.input, what="--input"), "--input")
    out = Path(args.output)
    _refuse_same_folder(Path(args.input), out)
    for path in progress(paths, desc="degrade", unit="img"):
        image = read_image(path)
        with _naming(path):
            lr = degrade(image, kernel, args.scale, device)
        write_png(out / f"{path.stem}.png", lr)
    print(f"wrote {len(paths)} LR image(s) to {out}")


def cmd_downsample(args) -> None:
    from adl.device import resolve_device
    from adl.downsampler.apply import downsample_image, load_downsampler
    from adl.imageio import list_images, read_image, require_unique_stems, write_png
    from adl.progress import progress

    device = resolve_device(args.device)
    model, config = load_downsampler(args.checkpoint, device)
    scale = args.scale or config["scale"]
    paths = require_unique_stems(list_images(args.input, what="--input"), "--input")
    out = Path(args.output)
    _refuse_same_folder(Path(args.input), out)
    for path in progress(paths, desc=f"downsample ×{scale}", unit="img"):
        image = read_image(path)
        with _naming(path):
            lr = downsample_image(model, image, scale, device)
        write_png(out / f"{path.stem}.png", lr)
    print(f"wrote {len(paths)} image(s) to {out}")


def cmd_train_downsampler(args) -> None:
    from adl.downsampler.train import DownsamplerOptions, train_downsampler
    from adl.options import from_args

    path = train_downsampler(from_args(DownsamplerOptions, args), args.output)
    print(f"checkpoint: {path}")


def cmd_train_sr(args) -> None:
    from adl.options import from_args
    from adl.sr.train import SROptions, train_sr

    path = train_sr(from_args(SROptions, args), args.output)
    print(f"checkpoint: {path}")


def cmd_evaluate_sr(args) -> None:
    from adl.device import resolve_device
    from adl.sr.evaluate import evaluate_sr

    result = evaluate_sr(args.checkpoint, args.lr, args.hr, args.scale, args.output, resolve_device(args.device),
                         save_dir=args.save_dir, tile=args.tile, tags=_tags(args))
    print(f"PSNR {result['psnr']:.4f} dB, SSIM {result['ssim']:.4f} over {result['images']} image(s); "
          f"wrote {args.output}")


def cmd_upscale(args) -> None:
    from adl.device import resolve_device
    from adl.sr.evaluate import upscale_folder

    count = upscale_folder(args.checkpoint, args.input, args.output, resolve_device(args.device), tile=args.tile)
    print(f"wrote {count} image(s) to {args.output}")


def cmd_export(args) -> None:
    from adl.downsampler.export import export_onnx

    meta = export_onnx(args.checkpoint, args.output, scale=args.scale, opset=args.opset)
    print(f"wrote {args.output} (×{meta['adl_scale']}, ONNX Runtime vs torch max |diff| "
          f"{meta['parity_max_abs_diff']:.2e})")


def cmd_generate(args) -> None:
    from adl.options import from_args
    from adl.shards.generate import GenerateOptions, generate

    manifest = generate(from_args(GenerateOptions, args))
    skipped = f"; {len(manifest['skipped'])} image(s) skipped, listed in manifest.json" if "skipped" in manifest else ""
    print(f"{manifest['total_samples']} pair(s) in {args.output} (provider {manifest['provider']}){skipped}")


def cmd_verify_shards(args) -> None:
    from adl.shards.format import verify_shards

    manifest = verify_shards(args.shard_dir)
    if manifest["options"]["format"] == "png":
        print(f"{args.shard_dir}: {manifest['total_samples']} PNG pair(s), all valid")
    else:
        print(f"{args.shard_dir}: {len(manifest['shards'])} shard(s), {manifest['total_samples']} samples, all valid")


def cmd_merge_shards(args) -> None:
    from adl.shards.merge import merge_shards

    manifest = merge_shards(args.parts, args.output, move=args.move)
    print(f"{args.output}: {len(manifest['shards'])} shard(s), {manifest['total_samples']} samples from "
          f"{len(args.parts)} part(s)")


def cmd_split(args) -> None:
    from adl.data.split import run_split

    options = {key: getattr(args, key) for key in ("root", "hr_range", "lr_range", "test_range",
                                                   "hr", "lr", "test_hr", "test_lr", "tile")}
    folders = run_split(args.protocol, args.output, **options)
    counts = {folder: sum(not p.name.startswith(".") for p in folder.iterdir()) for folder in folders.values()}
    print("wrote " + ", ".join(f"{folder} ({count})" for folder, count in counts.items()))


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def _tags(args) -> dict[str, str]:
    """The --tag KEY=VALUE options as a dict; a key given twice is an error."""
    tags: dict[str, str] = {}
    for key, value in args.tag or []:
        if key in tags:
            raise AdlError(f"--tag {key}: given twice ({tags[key]!r} and {value!r}); give each key once")
        tags[key] = value
    return tags


def _tag_option(p) -> None:
    p.add_argument("--tag", type=_tag, action="append", metavar="KEY=VALUE",
                   help="label stored in the JSON output for `adl table` (repeatable)")


def cmd_table(args) -> None:
    from adl.report.tables import write_table

    table, vs_paper = write_table(args.kind, args.output, args.files)
    print(f"wrote {table} and {vs_paper} from {len(args.files)} file(s)")


def cmd_figure_kernels(args) -> None:
    from adl.imageio import write_png
    from adl.kernels import load_kernel
    from adl.report.figures import kernels_figure

    true, retrieved = (load_kernel(p, args.scale) for p in (args.true, args.retrieved))
    write_png(args.output, kernels_figure(true, retrieved, args.cell, args.label))
    print(f"wrote {args.output}")


def cmd_figure_curves(args) -> None:
    from adl.report.figures import curves_figure

    columns = curves_figure(args.logs, args.output)
    print(f"wrote {args.output} ({', '.join(columns)})")


def cmd_figure_crops(args) -> None:
    from adl.imageio import read_image, write_png
    from adl.report.figures import crops_figure

    lr, sr, hr = (read_image(p) for p in (args.lr, args.sr, args.hr))
    write_png(args.output, crops_figure(lr, sr, hr, args.size, args.at, names=(args.lr, args.sr, args.hr)))
    print(f"wrote {args.output}")


def _point(text: str) -> tuple[int, int]:
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not Y,X (two integers)") from None
    return y, x


def cmd_retrieve_kernel(args) -> None:
    import numpy as np

    from adl.atomic import atomic_path
    from adl.device import resolve_device
    from adl.downsampler.retrieval import retrieve_from_model, retrieve_from_pairs
    from adl.imageio import list_images, pair_by_stem, write_png
    from adl.kernels import default_kernel_size, kernel_picture

    output = Path(args.output)
    if output.suffix.lower() != ".npy":  # np.save would append .npy to the temporary and strand it
        raise AdlError(f"--output {output}: must name a .npy file (a .png picture is written beside it)")
    size = args.size or default_kernel_size(args.scale)
    if size % 2 != args.scale % 2:
        raise UsageError(f"--size {size}: must be {'even' if args.scale % 2 == 0 else 'odd'} at scale {args.scale}")
    device = resolve_device(args.device)
    hr_paths = list_images(args.hr, what="--hr")
    if args.lr:
        pairs = pair_by_stem(hr_paths, list_images(args.lr, what="--lr"), "--hr", "--lr")
        kernel = retrieve_from_pairs(pairs, args.scale, size, args.images, device=device)
    else:
        from adl.downsampler.apply import UnitRangeDownsampler, load_downsampler
        from adl.downsampler.patches import load_images
        from adl.downsampler.scales import min_input_size

        model, _ = load_downsampler(args.checkpoint, device)
        images = load_images(hr_paths[: args.images], min_input_size(args.scale), "HR images", "--scale")
        kernel = retrieve_from_model(UnitRangeDownsampler(model, args.scale), images, args.scale, size, args.images,
                                     device=device)
    with atomic_path(output) as tmp:
        np.save(tmp, kernel)
    picture = output.with_suffix(".png")
    write_png(picture, kernel_picture(kernel))
    print(f"wrote {output} and {picture}")


def cmd_psnr(args) -> None:
    import csv
    import io
    import math

    from adl.atomic import write_text
    from adl.metrics import psnr_folders

    tags = _tags(args)
    rows = psnr_folders(args.pred, args.target, args.shave)
    finite = [v for _, v in rows if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else math.inf
    if args.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "psnr"])
        writer.writerows([name, f"{v:.4f}"] for name, v in rows)
        writer.writerow(["mean", f"{mean:.4f}"])
        write_text(args.csv, buf.getvalue())
    if args.json:
        import json

        result = {"tags": tags, "psnr": mean, "shave": args.shave,
                  "per_image": [{"image": name, "psnr": v} for name, v in rows]}
        write_text(args.json, json.dumps(result, indent=2) + "\n")
    if len(finite) < len(rows):
        log.warning("%d identical image pair(s) (infinite PSNR) left out of the mean", len(rows) - len(finite))
    print(f"{mean:.4f}")


def cmd_kernel_similarity(args) -> None:
    from adl.kernels import load_kernel
    from adl.metrics import kernel_similarity

    tags = _tags(args)
    a, b = (load_kernel(p, args.scale) for p in (args.a, args.b))
    similarity = kernel_similarity(a, b)
    if args.json:
        import json

        from adl.atomic import write_text

        write_text(args.json, json.dumps({"tags": tags, "similarity": similarity, "a": args.a, "b": args.b},
                                         indent=2) + "\n")
    print(f"{similarity:.6f}")


def cmd_sample_data(args) -> None:
    from adl.data.sample_data import write_sample_protocol
    from adl.kernels import resolve_kernel

    folders = write_sample_protocol(args.output, resolve_kernel(args.kernel, args.scale), args.scale, args.tile)
    print("wrote " + ", ".join(str(f) for f in folders.values()))


@contextlib.contextmanager
def _naming(path: Path):
    """Prefix the file being processed to an AdlError about it (the library sees arrays, not files)."""
    try:
        yield
    except AdlError as exc:
        raise AdlError(f"{path}: {exc}") from None


def _refuse_same_folder(src: Path, dst: Path) -> None:
    if dst.exists() and not dst.is_dir():
        raise AdlError(f"--output {dst}: exists and is not a folder; name a folder for the output images")
    if dst.exists() and src.resolve() == dst.resolve():
        raise AdlError(f"--output {dst}: same folder as --input; outputs would overwrite inputs")


# -- parser --------------------------------------------------------------------------------------
def _train_sr_extra(p) -> None:
    p.add_argument("--output", required=True, help="RUN_DIR; an existing one is resumed")
    p.add_argument("--amp", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")


def build_parser() -> argparse.ArgumentParser:
    from adl.choices import DEVICE_HELP
    from adl.kernels import KERNEL_NAMES

    parser = OneLineParser(prog="adl", description="Adaptive downsampling models for real-world super-resolution.")
    parser.add_argument("--version", action="version", version=f"adl {adl.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OptionsParser)

    def device_option(p):
        p.add_argument("--device", type=_device, default="auto", help=f"{DEVICE_HELP} (default auto)")

    p = sub.add_parser("kernels", help="write the synthetic kernels k0–k4 as .npy and .png")
    p.add_argument("--scale", type=_scale, required=True)
    p.add_argument("--output", required=True, help="folder")
    p.set_defaults(func=cmd_kernels)

    p = sub.add_parser("sample-data", help="an unpaired HR/LR protocol from scikit-image's bundled photos")
    p.add_argument("--output", required=True, help="folder; hr/, lr/, test_hr/, test_lr/ are written in it")
    p.add_argument("--scale", type=_scale, default=2)
    p.add_argument("--kernel", default="k3", help=f"true kernel: {'|'.join(KERNEL_NAMES)} or a .npy (default k3)")
    p.add_argument("--tile", type=_positive_int,
                   help="cut the training photos into TILE×TILE tiles shared at random between hr/ and lr/")
    p.set_defaults(func=cmd_sample_data)

    p = sub.add_parser("degrade", help="(HR ∗ k)↓s for every image of a folder")
    p.add_argument("--input", required=True, help="folder of HR images")
    p.add_argument("--output", required=True, help="folder for LR PNGs (same names)")
    p.add_argument("--scale", type=_scale, required=True)
    p.add_argument("--kernel", required=True, help=f"{'|'.join(KERNEL_NAMES)} or a path to a .npy kernel")
    device_option(p)
    p.set_defaults(func=cmd_degrade)

    # Options declared once, as fields of the dataclass named (adl.options); only what is not an
    # option of the library call is added here.
    p = sub.add_parser("train-downsampler", help="learn G from unpaired HR and LR images (Algorithm 1)",
                       options="adl.downsampler.options:DownsamplerOptions",
                       extra=lambda p: p.add_argument("--output", required=True,
                                                      help="RUN_DIR; an existing one is resumed"))
    p.set_defaults(func=cmd_train_downsampler)

    p = sub.add_parser("retrieve-kernel", help="least-squares kernel of HR→LR pairs or of a downsampler (eq. 6)")
    p.add_argument("--hr", required=True, help="folder of HR images")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--lr", help="folder of LR images paired with --hr by name")
    source.add_argument("--checkpoint", help="downsampler checkpoint (or run folder): fit G(HR)")
    p.add_argument("--scale", type=_scale, default=2)
    p.add_argument("--output", required=True, help="kernel .npy (a .png picture is written beside it)")
    p.add_argument("--size", type=_positive_int, help="kernel size (default 10 × scale)")
    p.add_argument("--images", type=_positive_int, default=50, help="images used (default 50)")
    device_option(p)
    p.set_defaults(func=cmd_retrieve_kernel)

    p = sub.add_parser("downsample", help="apply a trained downsampler to a folder")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or its run folder")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--scale", type=_scale, help="2, or 4 to apply the ×2 model twice (default: the run's scale)")
    device_option(p)
    p.set_defaults(func=cmd_downsample)

    p = sub.add_parser("train-sr", help="train EDSR or RRDB on (LR, HR) pairs from one LR source",
                       options="adl.sr.options:SROptions", extra=_train_sr_extra)
    p.set_defaults(func=cmd_train_sr)

    p = sub.add_parser("evaluate-sr", help="PSNR/SSIM of an SR checkpoint on LR/HR pairs (shave scale+6)")
    p.add_argument("--checkpoint", required=True, help="SR checkpoint.pt or its run folder")
    p.add_argument("--lr", required=True)
    p.add_argument("--hr", required=True)
    p.add_argument("--scale", type=_scale, required=True)
    p.add_argument("--output", required=True, help="metrics.json")
    p.add_argument("--save-dir", help="also write the SR images here")
    p.add_argument("--tile", type=_positive_int, default=256, help="LR tile size (default 256)")
    _tag_option(p)
    device_option(p)
    p.set_defaults(func=cmd_evaluate_sr)

    p = sub.add_parser("upscale", help="super-resolve every image of a folder with an SR checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--tile", type=_positive_int, default=256, help="LR tile size (default 256)")
    device_option(p)
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("export", help="export a downsampler to one self-contained ONNX file")
    p.add_argument("--checkpoint", required=True, help="downsampler checkpoint.pt or its run folder")
    p.add_argument("--output", required=True, help="model.onnx")
    p.add_argument("--scale", type=_scale, help="2, or 4 for the ×2 network applied twice (default: the run's)")
    p.add_argument("--opset", type=_positive_int, help="ONNX opset: only 18, the exporter's own and the one tested")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("generate", help="(G(HR), HR) training pairs in bulk: HDF5 shards or PNG folders",
                       options="adl.shards.options:GenerateOptions")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("verify-shards", help="check the manifest, every shard's checksum, shapes and data (or PNG pairs)")
    p.add_argument("shard_dir")
    p.set_defaults(func=cmd_verify_shards)

    p = sub.add_parser("merge-shards", help="one shard folder from the finished parts of adl generate --part")
    p.add_argument("parts", nargs="+", metavar="PART_DIR", help="every part folder of one generation")
    p.add_argument("--output", required=True, help="SHARD_DIR; rerunning the same command resumes")
    p.add_argument("--move", action="store_true",
                   help="move the shard files instead of hard-linking them (the parts are emptied)")
    p.set_defaults(func=cmd_merge_shards)

    p = sub.add_parser("split", help="choose the HR, LR and test images of a dataset (method.md §8)")
    p.add_argument("--protocol", choices=("sample", "div2k", "folders"), required=True)
    p.add_argument("--output", required=True, help="folder; <part>/ and <part>.txt are written in it")
    p.add_argument("--root", help="div2k: the folder holding DIV2K_train_HR/ and DIV2K_valid_HR/")
    p.add_argument("--hr-range", help="div2k: HR images (default 1-400)")
    p.add_argument("--lr-range", help="div2k: images degraded into the LR set (default 401-800)")
    p.add_argument("--test-range", help="div2k: test images (default 801-900)")
    p.add_argument("--tile", type=_positive_int,
                   help="sample: cut the training photos into TILE×TILE tiles shared at random between HR and LR "
                        "(one content distribution for both sides; docs/fidelity.md)")
    p.add_argument("--hr", help="folders: HR images, a folder or a quoted glob pattern")
    p.add_argument("--lr", help="folders: real LR images, a folder or a quoted glob pattern")
    p.add_argument("--test-hr", help="folders: test HR images")
    p.add_argument("--test-lr", help="folders: test LR images, paired with --test-hr by name")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("table", help="a results table (CSV) and its _vs_paper sibling from tagged JSON files")
    p.add_argument("--kind", required=True, choices=("table1", "table3", "kernels"),
                   help="table1: LR PSNR by data term; table3: SR PSNR by method and model; kernels: similarity")
    p.add_argument("--output", required=True, help="OUT.csv; OUT_vs_paper.csv is written beside it")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON results carrying --tag labels")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("figure", help="report figures: kernels, training curves, LR/SR/HR crops (PNG)")
    figures = p.add_subparsers(dest="figure", required=True, parser_class=OneLineParser)
    f = figures.add_parser("kernels", help="true and retrieved kernel side by side (paper Fig. 5/7)")
    f.add_argument("--output", required=True, help="FIG.png")
    f.add_argument("--true", required=True, help="true kernel .npy")
    f.add_argument("--retrieved", required=True, help="retrieved kernel .npy")
    f.add_argument("--label", help="caption drawn above the kernels")
    f.add_argument("--cell", type=_positive_int, default=16, help="pixels per kernel tap (default 16)")
    f.add_argument("--scale", type=_scale, default=2, help="scale the kernels are checked against (default 2)")
    f.set_defaults(func=cmd_figure_kernels)
    f = figures.add_parser("curves", help="training curves of one or more log.csv files")
    f.add_argument("--output", required=True, help="FIG.png")
    f.add_argument("logs", nargs="+", metavar="LOG.csv")
    f.set_defaults(func=cmd_figure_curves)
    f = figures.add_parser("crops", help="LR (nearest-upscaled) / SR / HR crops of the same region")
    f.add_argument("--output", required=True, help="FIG.png")
    f.add_argument("--lr", required=True)
    f.add_argument("--sr", required=True)
    f.add_argument("--hr", required=True)
    f.add_argument("--size", type=_positive_int, help="crop side in HR pixels (default 96, or the smaller side)")
    f.add_argument("--at", type=_point, action="append", metavar="Y,X",
                   help="top-left HR pixel of a crop; repeat for more rows (default: the centre)")
    f.set_defaults(func=cmd_figure_crops)

    p = sub.add_parser("psnr", help="mean RGB PSNR between two folders paired by name")
    p.add_argument("--pred", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--shave", type=_non_negative_int, required=True, help="border pixels left out on each side")
    p.add_argument("--csv", help="write per-image values here")
    p.add_argument("--json", help="write the mean, per-image values and tags here (for `adl table`)")
    _tag_option(p)
    p.set_defaults(func=cmd_psnr)

    p = sub.add_parser("kernel-similarity", help="max normalised cross-correlation of two kernels")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--scale", type=_scale, default=2, help="scale the kernels are checked against (default 2)")
    p.add_argument("--json", help="write the similarity, both paths and tags here (for `adl table`)")
    _tag_option(p)
    p.set_defaults(func=cmd_kernel_similarity)
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
