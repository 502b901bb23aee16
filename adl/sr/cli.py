"""The SR stage's subcommands: train-sr, evaluate-sr, upscale."""

from __future__ import annotations

from adl.choices import DEFAULT_TILE
from adl.command import device_option, scale, tag_option, tags
from adl.options import positive_int


def cmd_train_sr(args) -> None:
    from adl.options import from_args
    from adl.sr.options import SROptions
    from adl.sr.train import train_sr

    path = train_sr(from_args(SROptions, args), args.output)
    print(f"checkpoint: {path}")


def cmd_evaluate_sr(args) -> None:
    from adl.device import resolve_device
    from adl.sr.evaluate import evaluate_sr

    result = evaluate_sr(args.checkpoint, args.lr, args.hr, args.scale, args.output, resolve_device(args.device),
                         save_dir=args.save_dir, tile=args.tile, tags=tags(args))
    print(f"PSNR {result['psnr']:.4f} dB, SSIM {result['ssim']:.4f} over {result['images']} image(s); "
          f"wrote {args.output}")


def cmd_upscale(args) -> None:
    from adl.device import resolve_device
    from adl.sr.evaluate import upscale_folder

    count = upscale_folder(args.checkpoint, args.input, args.output, resolve_device(args.device), tile=args.tile)
    print(f"wrote {count} image(s) to {args.output}")


def _train_sr_extra(p) -> None:
    p.add_argument("--output", required=True, help="RUN_DIR; an existing one is resumed")
    p.add_argument("--amp", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")


def _tile_option(p) -> None:
    p.add_argument("--tile", type=positive_int, default=DEFAULT_TILE, help=f"LR tile size (default {DEFAULT_TILE})")


def register(sub) -> None:
    p = sub.add_parser("train-sr", help="train EDSR or RRDB on (LR, HR) pairs from one LR source",
                       options="adl.sr.options:SROptions", extra=_train_sr_extra)
    p.set_defaults(func=cmd_train_sr)

    p = sub.add_parser("evaluate-sr", help="PSNR/SSIM of an SR checkpoint on LR/HR pairs (shave scale+6)")
    p.add_argument("--checkpoint", required=True, help="SR checkpoint.pt or its run folder")
    p.add_argument("--lr", required=True)
    p.add_argument("--hr", required=True)
    p.add_argument("--scale", type=scale, required=True)
    p.add_argument("--output", required=True, help="metrics.json")
    p.add_argument("--save-dir", help="also write the SR images here")
    _tile_option(p)
    tag_option(p)
    device_option(p)
    p.set_defaults(func=cmd_evaluate_sr)

    p = sub.add_parser("upscale", help="super-resolve every image of a folder with an SR checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    _tile_option(p)
    device_option(p)
    p.set_defaults(func=cmd_upscale)
