"""Dataset splits (method.md §8): which images are the HR set, which the LR set, which the test set.

A split only chooses files; degrading them is a later workflow stage. Each part becomes a folder
OUT/<part>/ of symlinks to the originals (the sample protocol writes PNG crops instead) and a list
file OUT/<part>.txt of the original paths, one per line, so that a workflow reruns what depends
on a split when the split changes. Rerunning a split into the same OUT replaces what adl wrote
there and refuses to touch anything else.

The parts:
- ``hr``: HR training images;
- ``lr_source``: images whose kernel-degraded versions become the unpaired LR set (DIV2K, sample);
- ``lr``: real LR images used as they are (folders protocol, e.g. RealSR);
- ``test_hr`` and, where the dataset has them, ``test_lr``: the test pairs.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from adl.atomic import atomic_path, write_text
from adl.errors import AdlError
from adl.imageio import (
    IMAGE_SUFFIXES,
    list_images,
    pair_by_stem,
    require_unique_stems,
    write_png,
)

PARTS = ("hr", "lr_source", "lr", "test_hr", "test_lr")
DIV2K_RANGES = {"hr": "1-400", "lr_source": "401-800", "test_hr": "801-900"}
DIV2K_LAYOUT = "ROOT/DIV2K_train_HR/0001.png…0800.png and ROOT/DIV2K_valid_HR/0801.png…0900.png"
MANIFEST = ".adl-split"  # hidden in each part folder: the names adl wrote there (see _clear_and_claim)
SAMPLE_MULTIPLE = 4  # crops divisible by 4 degrade at ×2 and ×4 alike, with no further cropping


# -- choosing files --------------------------------------------------------------------------------
def parse_range(text: str, option: str) -> range:
    """'401-800' -> range(401, 801); anything else is an error naming the option."""
    first, sep, last = str(text).partition("-")
    try:
        start, end = int(first), int(last)
    except ValueError:
        raise AdlError(f"{option} {text!r}: expected FIRST-LAST, e.g. 1-400") from None
    if not sep or start < 1:
        raise AdlError(f"{option} {text!r}: expected FIRST-LAST with positive numbers, e.g. 1-400")
    if start > end:
        raise AdlError(f"{option} {text!r}: the first number is larger than the last")
    if end > 9999:
        raise AdlError(f"{option} {text!r}: DIV2K images are numbered with four digits, up to 9999")
    return range(start, end + 1)


def div2k_split(root: str | os.PathLike, hr_range: str = DIV2K_RANGES["hr"],
                lr_range: str = DIV2K_RANGES["lr_source"], test_range: str = DIV2K_RANGES["test_hr"],
                ) -> dict[str, list[Path]]:
    """DIV2K by image number: numbers up to 800 are in DIV2K_train_HR/, the others in DIV2K_valid_HR/."""
    root = Path(root)
    if not root.is_dir():
        raise AdlError(f"--root {root}: not a folder; expected the DIV2K layout {DIV2K_LAYOUT}")
    options = {"hr": "--hr-range", "lr_source": "--lr-range", "test_hr": "--test-range"}
    texts = {"hr": hr_range, "lr_source": lr_range, "test_hr": test_range}
    ranges = {part: parse_range(texts[part], options[part]) for part in options}
    # An image in two parts would put HR training images on the LR side, or test on training images.
    for a, b in (("hr", "lr_source"), ("hr", "test_hr"), ("lr_source", "test_hr")):
        first_shared = max(ranges[a].start, ranges[b].start)
        if first_shared < min(ranges[a].stop, ranges[b].stop):
            raise AdlError(f"{options[a]} {texts[a]} and {options[b]} {texts[b]} overlap (image {first_shared:04d} "
                           f"is in both); the parts must not share images")
    parts = {part: [root / ("DIV2K_train_HR" if n <= 800 else "DIV2K_valid_HR") / f"{n:04d}.png" for n in numbers]
             for part, numbers in ranges.items()}
    missing = [p for paths in parts.values() for p in paths if not p.is_file()]
    if missing:
        total = sum(map(len, parts.values()))
        raise AdlError(f"{missing[0]}: missing ({len(missing)} of the split's {total} files are missing); "
                       f"expected the DIV2K layout {DIV2K_LAYOUT}")
    return parts


def match_images(spec: str | os.PathLike, option: str) -> list[Path]:
    """The image files of a folder, or those a glob pattern matches, in sorted order."""
    if Path(spec).is_dir():
        return list_images(spec, what=option)
    matched = sorted(Path(p) for p in glob.glob(str(spec), recursive=True))
    images = [p for p in matched if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise AdlError(f"{option} {str(spec)!r}: matched no image files (looked for {', '.join(IMAGE_SUFFIXES)}); "
                       f"pass a folder or a quoted glob pattern")
    return images


def folders_split(hr: str, lr: str, test_hr: str, test_lr: str | None = None) -> dict[str, list[Path]]:
    """A dataset with real LR images (RealSR and the like): each part from a folder or glob pattern."""
    specs = {"hr": ("--hr", hr), "lr": ("--lr", lr), "test_hr": ("--test-hr", test_hr)}
    if test_lr is not None:
        specs["test_lr"] = ("--test-lr", test_lr)
    # Links are named like their originals, and later stages name outputs by stem: stems must be unique.
    parts = {part: require_unique_stems(match_images(spec, option), option) for part, (option, spec) in specs.items()}
    if test_lr is not None:
        pair_by_stem(parts["test_hr"], parts["test_lr"], "--test-hr", "--test-lr")
    seen: dict[Path, str] = {}
    for part, paths in parts.items():
        for path in paths:
            other = seen.setdefault(path.resolve(), specs[part][0])
            if other != specs[part][0]:
                raise AdlError(f"{path}: matched by both {other} and {specs[part][0]}; the parts must not share images")
    return parts


# -- writing a split -------------------------------------------------------------------------------
def link_split(output: str | os.PathLike, parts: dict[str, list[Path]]) -> dict[str, Path]:
    """Symlink every part's files (absolute targets) into OUT/<part>/ and list them in OUT/<part>.txt."""
    originals = {part: [Path(os.path.abspath(p)) for p in paths] for part, paths in parts.items()}
    folders = _clear_and_claim(Path(output), originals)
    for part, paths in originals.items():
        for path in paths:
            with atomic_path(folders[part] / path.name) as tmp:
                tmp.unlink()  # atomic_path made a file; a symlink takes its name and is renamed into place
                tmp.symlink_to(path)
    _write_lists(Path(output), originals)
    return folders


def write_sample_split(output: str | os.PathLike, tile: int | None = None, photos: str = "skimage") -> dict[str, Path]:
    """The sample protocol's crops (or tiles) of one photo set as PNGs; their list files name the PNGs themselves."""
    from adl.data.sample_data import sample_split

    output = Path(output).absolute()
    images = sample_split(SAMPLE_MULTIPLE, tile, photos=photos)
    written = {part: [output / part / f"{name}.png" for name in named] for part, named in images.items()}
    folders = _clear_and_claim(output, written)
    for part, named in images.items():
        for name, image in named.items():
            write_png(folders[part] / f"{name}.png", image)
    _write_lists(output, written)
    return folders


def _clear_and_claim(output: Path, listed: dict[str, list[Path]]) -> dict[str, Path]:
    """Remove what an earlier split wrote under ``output``, record what this one will write, return its folders.

    What adl owns in a part folder is recorded in the folder's hidden manifest, not in the list file,
    because Snakemake deletes a rule's outputs (the list files) before it reruns the rule. Anything
    not in the manifest is the user's: then nothing is touched and the split stops. The manifest is
    written before the files and removed after them, so an interrupted split is still cleaned up.
    """
    if output.exists() and not output.is_dir():
        raise AdlError(f"--output {output}: exists and is not a folder; name a folder for the split")
    owned = {}
    for part in PARTS:
        folder = output / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise AdlError(f"{folder}: exists and is not a folder; move it away, adl writes the {part} part here")
        entries = sorted(folder.iterdir(), key=lambda e: e.name == MANIFEST) if folder.is_dir() else []
        names = {MANIFEST, *_manifest(folder)}
        for entry in entries:
            if entry.name not in names and not _is_leftover_temporary(entry.name):
                raise AdlError(f"{entry}: not written by adl split; move it out of {folder} or choose another --output")
        owned[part] = entries
    for part, entries in owned.items():
        (output / f"{part}.txt").unlink(missing_ok=True)  # no list may describe a folder that is changing
        for entry in entries:
            entry.unlink()  # a file or a symlink; only the link goes, never what it points to
        if part not in listed and (output / part).is_dir():  # a part of an earlier, different split
            (output / part).rmdir()
    for part, paths in listed.items():
        write_text(output / part / MANIFEST, "".join(f"{p.name}\n" for p in sorted(paths)))
    return {part: output / part for part in listed}


def _write_lists(output: Path, listed: dict[str, list[Path]]) -> None:
    """Last, so that a list file exists only beside a complete part."""
    for part, paths in listed.items():
        write_text(output / f"{part}.txt", "".join(f"{p}\n" for p in sorted(paths)))


def _manifest(folder: Path) -> list[str]:
    path = folder / MANIFEST
    return path.read_text().splitlines() if path.is_file() else []


def _is_leftover_temporary(name: str) -> bool:
    """adl.atomic's ``.<name>.<random>.part<suffix>``, left behind only if a write was killed."""
    return name.startswith(".") and ".part" in name


# -- one entry point for the CLI and the workflow -------------------------------------------------
def run_split(protocol: str, output: str | os.PathLike, **options: str | None) -> dict[str, Path]:
    """Check that the options fit the protocol, then choose and write the split."""
    allowed = {"sample": {"tile", "photos"}, "div2k": {"root", "hr_range", "lr_range", "test_range"},
               "folders": {"hr", "lr", "test_hr", "test_lr"}}[protocol]
    given = {key for key, value in options.items() if value is not None}
    extra = sorted(given - allowed)
    if extra:
        raise AdlError(f"--{extra[0].replace('_', '-')} does not apply to --protocol {protocol}")
    args = {key: options[key] for key in given}
    if protocol == "sample":
        return write_sample_split(output, None if args.get("tile") is None else int(args["tile"]),
                                  args.get("photos", "skimage"))
    if protocol == "div2k":
        if "root" not in args:
            raise AdlError("--protocol div2k needs --root DIR, the folder holding DIV2K_train_HR/ and DIV2K_valid_HR/")
        return link_split(output, div2k_split(**args))
    for key in ("hr", "lr", "test_hr"):
        if key not in args:
            raise AdlError(f"--protocol folders needs --hr, --lr and --test-hr (a folder or quoted glob each); "
                           f"--{key.replace('_', '-')} is missing")
    return link_split(output, folders_split(**args))
