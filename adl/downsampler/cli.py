"""The downsampler stage's subcommands: train-downsampler, retrieve-kernel, downsample, export."""

from __future__ import annotations

from adl.choices import RETRIEVAL_IMAGES
from adl.command import device_option, scale
from adl.options import byte_size, positive_int


def cmd_train_downsampler(args) -> None:
    from adl.downsampler.options import DownsamplerOptions
    from adl.downsampler.train import train_downsampler
    from adl.options import from_args

    path = train_downsampler(from_args(DownsamplerOptions, args), args.output)
    print(f"checkpoint: {path}")


def cmd_retrieve_kernel(args) -> None:
    from adl.device import resolve_device
    from adl.downsampler.retrieval import retrieve_kernel_file

    picture = retrieve_kernel_file(args.output, args.hr, args.scale, args.size, args.images,
                                   resolve_device(args.device), lr=args.lr, checkpoint=args.checkpoint)
    print(f"wrote {args.output} and {picture}")


def cmd_downsample(args) -> None:
    from adl.device import resolve_device
    from adl.downsampler.apply import downsample_folder

    count = downsample_folder(args.checkpoint, args.input, args.output, args.scale, resolve_device(args.device),
                              args.max_memory)
    print(f"wrote {count} image(s) to {args.output}")


def cmd_export(args) -> None:
    from adl.downsampler.export import export_onnx

    meta = export_onnx(args.checkpoint, args.output, scale=args.scale, opset=args.opset)
    print(f"wrote {args.output} (×{meta['adl_scale']}, ONNX Runtime vs torch max |diff| "
          f"{meta['parity_max_abs_diff']:.2e})")


def register(sub) -> None:
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
    p.add_argument("--scale", type=scale, default=2)
    p.add_argument("--output", required=True, help="kernel .npy (a .png picture is written beside it)")
    p.add_argument("--size", type=positive_int, help="kernel size (default 10 × scale)")
    p.add_argument("--images", type=positive_int, default=RETRIEVAL_IMAGES,
                   help=f"images used (default {RETRIEVAL_IMAGES})")
    device_option(p)
    p.set_defaults(func=cmd_retrieve_kernel)

    p = sub.add_parser("downsample", help="apply a trained downsampler to a folder")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or its run folder")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--scale", type=scale, help="2, or 4 to apply the ×2 model twice (default: the run's scale)")
    p.add_argument("--max-memory", type=byte_size, metavar="BYTES",
                   help="host memory G may use, e.g. 2G: a larger image is refused before it runs "
                        "(default: half the physical memory; docs/performance.md)")
    device_option(p)
    p.set_defaults(func=cmd_downsample)

    p = sub.add_parser("export", help="export a downsampler to one self-contained ONNX file")
    p.add_argument("--checkpoint", required=True, help="downsampler checkpoint.pt or its run folder")
    p.add_argument("--output", required=True, help="model.onnx")
    p.add_argument("--scale", type=scale, help="2, or 4 for the ×2 network applied twice (default: the run's)")
    p.add_argument("--opset", type=positive_int, help="ONNX opset: only 18, the exporter's own and the one tested")
    p.set_defaults(func=cmd_export)
