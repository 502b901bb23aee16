"""The data stage's subcommands: `adl sample-data`, `adl split`, `adl denoise` and `adl noise-model`."""

from __future__ import annotations

from adl.choices import DENOISE_METHODS, KERNEL_NAMES, PHOTO_SETS
from adl.command import scale
from adl.options import non_negative_float, positive_float, positive_int

PHOTOS_HELP = "photo set (default skimage; docs/fidelity.md, 'Photo sets')"


def cmd_sample_data(args) -> None:
    from adl.data.sample_data import write_sample_protocol
    from adl.kernels import resolve_kernel

    folders = write_sample_protocol(args.output, resolve_kernel(args.kernel, args.scale), args.scale, args.tile,
                                    photos=args.photos)
    print("wrote " + ", ".join(str(f) for f in folders.values()))


def cmd_split(args) -> None:
    from adl.data.split import run_split

    options = {key: getattr(args, key) for key in ("root", "hr_range", "lr_range", "test_range",
                                                   "hr", "lr", "test_hr", "test_lr", "tile", "photos")}
    folders = run_split(args.protocol, args.output, **options)
    counts = {folder: sum(not p.name.startswith(".") for p in folder.iterdir()) for folder in folders.values()}
    print("wrote " + ", ".join(f"{folder} ({count})" for folder, count in counts.items()))


def cmd_denoise(args) -> None:
    from adl.data.denoise import RECORD, denoise_folder

    record = denoise_folder(args.input, args.output, args.method, args.sigma)
    levels = [v["sigma_used"] for v in record["images"].values()]
    print(f"{len(levels)} image(s) denoised ({args.method}) into {args.output}; noise σ {min(levels):.2f}–"
          f"{max(levels):.2f} levels, per image in {args.output}/{RECORD}")


def cmd_noise_model(args) -> None:
    from adl.data.noise_model import build_noise_model

    m = build_noise_model(args.noisy, args.clean, args.output, args.scale, args.patch, args.flat_std,
                          args.max_patches, args.min_patches, args.seed)
    fit = ", ".join(f"{c}: a={a:.4f} b={b:.3f}" for c, a, b in zip("RGB", m.a, m.b))
    print(f"{args.output}: {len(m.pool)} flat {args.patch}x{args.patch} residual patch(es); variance = a·I + b ({fit})")


def register(sub) -> None:
    p = sub.add_parser("sample-data", help="an unpaired HR/LR protocol from scikit-image's bundled photos")
    p.add_argument("--output", required=True, help="folder; hr/, lr/, test_hr/, test_lr/ are written in it")
    p.add_argument("--scale", type=scale, default=2)
    p.add_argument("--kernel", default="k3", help=f"true kernel: {'|'.join(KERNEL_NAMES)} or a .npy (default k3)")
    p.add_argument("--tile", type=positive_int,
                   help="cut the training photos into TILE×TILE tiles shared at random between hr/ and lr/")
    p.add_argument("--photos", choices=PHOTO_SETS, default="skimage", help=PHOTOS_HELP)
    p.set_defaults(func=cmd_sample_data)

    p = sub.add_parser("split", help="choose the HR, LR and test images of a dataset (method.md §8)")
    p.add_argument("--protocol", choices=("sample", "div2k", "folders"), required=True)
    p.add_argument("--output", required=True, help="folder; <part>/ and <part>.txt are written in it")
    p.add_argument("--root", help="div2k: the folder holding DIV2K_train_HR/ and DIV2K_valid_HR/")
    p.add_argument("--hr-range", help="div2k: HR images (default 1-400)")
    p.add_argument("--lr-range", help="div2k: images degraded into the LR set (default 401-800)")
    p.add_argument("--test-range", help="div2k: test images (default 801-900)")
    p.add_argument("--tile", type=positive_int,
                   help="sample: cut the training photos into TILE×TILE tiles shared at random between HR and LR "
                        "(one content distribution for both sides; docs/fidelity.md)")
    p.add_argument("--photos", choices=PHOTO_SETS, help="sample: " + PHOTOS_HELP)
    p.add_argument("--hr", help="folders: HR images, a folder or a quoted glob pattern")
    p.add_argument("--lr", help="folders: real LR images, a folder or a quoted glob pattern")
    p.add_argument("--test-hr", help="folders: test HR images")
    p.add_argument("--test-lr", help="folders: test LR images, paired with --test-hr by name")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("denoise", help="denoise an LR set before training G on it (paper §4.7; docs/noise.md)")
    p.add_argument("--input", required=True, help="folder of noisy LR images")
    p.add_argument("--output", required=True,
                   help="folder; <stem>.png per image and denoise.json (per-image noise levels); a rerun resumes")
    p.add_argument("--method", choices=DENOISE_METHODS, default="bm3d",
                   help="bm3d (the bm3d package), nl-means or wavelet (scikit-image, fast) (default bm3d)")
    p.add_argument("--sigma", type=non_negative_float,
                   help="noise σ in 8-bit levels for every image (default: estimated per image, skimage estimate_sigma)")
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("noise-model", help="a noise model of an LR set from its residual to the denoised set "
                                           "(for adl generate --noise; docs/noise.md)")
    p.add_argument("--noisy", required=True, help="the LR images as they are")
    p.add_argument("--clean", required=True, help="the same images denoised (adl denoise), paired by name")
    p.add_argument("--output", required=True, help="the model file to write (.npz)")
    p.add_argument("--scale", type=scale, required=True, help="the scale of the LR set (generate refuses other scales)")
    p.add_argument("--patch", type=positive_int, default=32, help="side of the pool's residual patches (default 32)")
    p.add_argument("--flat-std", type=positive_float, default=4.0,
                   help="a pixel is flat when the denoised image's 7×7 standard deviation is at most this many "
                        "levels (default 4)")
    p.add_argument("--max-patches", type=positive_int, default=4096, help="pool size cap, a seeded subset (default 4096)")
    p.add_argument("--min-patches", type=positive_int, default=16,
                   help="fewer flat patches than this is an error (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pool's subset (default 0)")
    p.set_defaults(func=cmd_noise_model)
