"""The report stage's subcommands: `adl table` and `adl figure`."""

from __future__ import annotations

import argparse

from adl.command import OneLineParser, scale
from adl.options import positive_int


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


def register(sub) -> None:
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
    f.add_argument("--cell", type=positive_int, default=16, help="pixels per kernel tap (default 16)")
    f.add_argument("--scale", type=scale, default=2, help="scale the kernels are checked against (default 2)")
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
    f.add_argument("--size", type=positive_int, help="crop side in HR pixels (default 96, or the smaller side)")
    f.add_argument("--at", type=_point, action="append", metavar="Y,X",
                   help="top-left HR pixel of a crop; repeat for more rows (default: the centre)")
    f.set_defaults(func=cmd_figure_crops)
