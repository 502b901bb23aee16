"""The data stage's subcommands: `adl sample-data` and `adl split`."""

from __future__ import annotations

from adl.choices import KERNEL_NAMES, PHOTO_SETS
from adl.command import scale
from adl.options import positive_int

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
