"""``adl split``: the DIV2K, folders and sample protocols of method.md §8, and ``adl sample-data`` after
it was rebuilt on the sample split."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adl.cli import main
from adl.imageio import read_image

TINY_PNG = io.BytesIO()
Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(TINY_PNG, format="PNG")


# -- helpers ---------------------------------------------------------------------------------------
def fake_div2k(root: Path, numbers) -> Path:
    """DIV2K's layout with the same 8×8 PNG under every name: the split looks at names only."""
    for n in numbers:
        path = root / ("DIV2K_train_HR" if n <= 800 else "DIV2K_valid_HR") / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TINY_PNG.getvalue())
    return root


def touch_images(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(TINY_PNG.getvalue())
    return folder


def split(capsys, *argv) -> int:
    code = main(["-q", "split", *map(str, argv)])
    capsys.readouterr()
    return code


def assert_one_error(capsys, argv, *names) -> str:
    """Exit 1 with exactly one stderr line, an ``adl split: error:`` naming every one of ``names``."""
    code = main(["-q", "split", *map(str, argv)])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("adl split: error: "), err
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


def visible(folder: Path) -> list[Path]:
    """A folder's entries less hidden ones (adl split's manifest), as list_images sees them."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def names(folder: Path) -> list[str]:
    return [p.name for p in visible(folder)]


def assert_links(out: Path, part: str, originals: list[Path]) -> None:
    """OUT/part/ holds one absolute symlink per original and OUT/part.txt lists the originals."""
    links = visible(out / part)
    assert [p.name for p in links] == sorted(p.name for p in originals)
    for link in links:
        assert link.is_symlink() and os.path.isabs(os.readlink(link))
    assert sorted(link.resolve() for link in links) == sorted(p.resolve() for p in originals)
    assert (out / f"{part}.txt").read_text().splitlines() == sorted(str(p.absolute()) for p in originals)


# -- DIV2K -------------------------------------------------------------------------------------------
def test_div2k_custom_ranges_link_the_chosen_numbers(tmp_path, capsys):
    root = fake_div2k(tmp_path / "DIV2K", [*range(1, 8), 801, 802, 803])
    out = tmp_path / "split"
    assert split(capsys, "--protocol", "div2k", "--root", root, "--output", out,
                 "--hr-range", "1-3", "--lr-range", "4-6", "--test-range", "801-802") == 0
    train, valid = root / "DIV2K_train_HR", root / "DIV2K_valid_HR"
    assert_links(out, "hr", [train / f"000{n}.png" for n in (1, 2, 3)])
    assert_links(out, "lr_source", [train / f"000{n}.png" for n in (4, 5, 6)])
    assert_links(out, "test_hr", [valid / "0801.png", valid / "0802.png"])
    assert names(out) == ["hr", "hr.txt", "lr_source", "lr_source.txt", "test_hr", "test_hr.txt"]


def test_div2k_default_ranges_are_the_paper_protocol(tmp_path, capsys):
    root = fake_div2k(tmp_path / "DIV2K", range(1, 901))
    out = tmp_path / "split"
    assert split(capsys, "--protocol", "div2k", "--root", root, "--output", out) == 0
    assert [len(names(out / part)) for part in ("hr", "lr_source", "test_hr")] == [400, 400, 100]
    assert names(out / "hr")[::399] == ["0001.png", "0400.png"]
    assert names(out / "lr_source")[::399] == ["0401.png", "0800.png"]
    assert names(out / "test_hr")[::99] == ["0801.png", "0900.png"]
    assert (out / "test_hr" / "0801.png").resolve() == (root / "DIV2K_valid_HR" / "0801.png").resolve()


def test_div2k_names_the_first_missing_file_and_the_layout(tmp_path, capsys):
    root = fake_div2k(tmp_path / "DIV2K", [1, 2, 3, 4, 6, 7, 801])  # 0005 and 0802 are missing
    line = assert_one_error(capsys, ["--protocol", "div2k", "--root", root, "--output", tmp_path / "out",
                                     "--hr-range", "1-3", "--lr-range", "4-7", "--test-range", "801-802"],
                            Path("DIV2K_train_HR") / "0005.png", "DIV2K_valid_HR/0801.png")
    assert "0802" not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ranges, named", [
    (["--hr-range", "1-4", "--lr-range", "4-6"], ["--hr-range 1-4", "--lr-range 4-6", "0004"]),
    (["--hr-range", "1-4", "--lr-range", "5-900"], ["--lr-range 5-900", "--test-range 801-900", "0801"]),
    (["--hr-range", "3-1"], ["--hr-range '3-1'", "larger"]),
    (["--hr-range", "0-3"], ["--hr-range '0-3'", "positive"]),
    (["--test-range", "801"], ["--test-range '801'", "FIRST-LAST"]),
    (["--lr-range", "a-b"], ["--lr-range 'a-b'", "FIRST-LAST"]),
])
def test_div2k_bad_ranges_are_refused(tmp_path, capsys, ranges, named):
    root = fake_div2k(tmp_path / "DIV2K", [1])
    assert_one_error(capsys, ["--protocol", "div2k", "--root", root, "--output", tmp_path / "out", *ranges], *named)


def test_options_of_another_protocol_are_refused(tmp_path, capsys):
    assert_one_error(capsys, ["--protocol", "sample", "--hr-range", "1-3", "--output", tmp_path], "--hr-range")
    assert_one_error(capsys, ["--protocol", "div2k", "--output", tmp_path], "--root")
    assert_one_error(capsys, ["--protocol", "folders", "--hr", tmp_path, "--output", tmp_path], "--lr")


# -- folders -----------------------------------------------------------------------------------------
@pytest.fixture
def realsr(tmp_path) -> Path:
    """RealSR-like: HR and LR training images under one folder, told apart by name; test pairs apart."""
    root = tmp_path / "RealSR"
    touch_images(root / "train", "a_HR.png", "b_HR.png", "c_LR.png", "d_LR.png", "e_LR.png", "notes.txt")
    touch_images(root / "test" / "HR", "x.png", "y.png")
    touch_images(root / "test" / "LR", "x.png", "y.png")
    return root


def test_folders_from_globs_and_folders(tmp_path, capsys, realsr):
    out = tmp_path / "split"
    assert split(capsys, "--protocol", "folders", "--hr", realsr / "train" / "*_HR.png",
                 "--lr", realsr / "train" / "*_LR.*", "--test-hr", realsr / "test" / "HR",
                 "--test-lr", realsr / "test" / "LR", "--output", out) == 0
    train = realsr / "train"
    assert_links(out, "hr", [train / "a_HR.png", train / "b_HR.png"])
    assert_links(out, "lr", [train / n for n in ("c_LR.png", "d_LR.png", "e_LR.png")])  # not notes.txt
    assert_links(out, "test_hr", [realsr / "test" / "HR" / n for n in ("x.png", "y.png")])
    assert_links(out, "test_lr", [realsr / "test" / "LR" / n for n in ("x.png", "y.png")])
    assert not (out / "lr_source").exists()


def test_folders_empty_glob_is_refused_by_option_and_pattern(tmp_path, capsys, realsr):
    pattern = realsr / "train" / "*_GT.png"
    assert_one_error(capsys, ["--protocol", "folders", "--hr", realsr / "train" / "*_HR.png", "--lr", pattern,
                              "--test-hr", realsr / "test" / "HR", "--output", tmp_path / "out"], "--lr", pattern)
    assert not (tmp_path / "out").exists()


def test_folders_unpaired_test_images_are_refused(tmp_path, capsys, realsr):
    touch_images(realsr / "test" / "LR", "z.png")
    assert_one_error(capsys, ["--protocol", "folders", "--hr", realsr / "train" / "*_HR.png",
                              "--lr", realsr / "train" / "*_LR.png", "--test-hr", realsr / "test" / "HR",
                              "--test-lr", realsr / "test" / "LR", "--output", tmp_path / "out"],
                     "z.png", "--test-hr", "--test-lr")


def test_folders_an_image_in_two_parts_is_refused(tmp_path, capsys, realsr):
    assert_one_error(capsys, ["--protocol", "folders", "--hr", realsr / "train" / "*.png",
                              "--lr", realsr / "train" / "*_LR.png", "--test-hr", realsr / "test" / "HR",
                              "--output", tmp_path / "out"], "c_LR.png", "--hr", "--lr")


# -- rerunning into the same folder --------------------------------------------------------------------
def test_rerun_replaces_the_split_and_touches_nothing_else(tmp_path, capsys, realsr):
    root, out = fake_div2k(tmp_path / "DIV2K", [*range(1, 7), 801]), tmp_path / "split"
    folders = ["--protocol", "folders", "--hr", realsr / "train" / "*_HR.png", "--lr", realsr / "train" / "*_LR.png",
               "--test-hr", realsr / "test" / "HR", "--test-lr", realsr / "test" / "LR", "--output", out]
    assert split(capsys, *folders) == 0
    # Another protocol into the same folder: the earlier split's parts go, its originals stay.
    assert split(capsys, "--protocol", "div2k", "--root", root, "--output", out,
                 "--hr-range", "1-2", "--lr-range", "3-5", "--test-range", "801-801") == 0
    assert names(out) == ["hr", "hr.txt", "lr_source", "lr_source.txt", "test_hr", "test_hr.txt"]
    assert names(out / "hr") == ["0001.png", "0002.png"] and names(out / "test_hr") == ["0801.png"]
    assert len(list((realsr / "train").iterdir())) == 6
    # The same protocol with other ranges: the list files and folders follow.
    assert split(capsys, "--protocol", "div2k", "--root", root, "--output", out,
                 "--hr-range", "1-1", "--lr-range", "2-6", "--test-range", "801-801") == 0
    assert names(out / "hr") == ["0001.png"] and len((out / "hr.txt").read_text().splitlines()) == 1
    assert names(out / "lr_source") == [f"000{n}.png" for n in range(2, 7)]
    assert all((root / "DIV2K_train_HR" / f"000{n}.png").is_file() for n in range(1, 7))
    # Snakemake deletes a rule's outputs, the list files, before it reruns the rule.
    for list_file in out.glob("*.txt"):
        list_file.unlink()
    assert split(capsys, "--protocol", "div2k", "--root", root, "--output", out,
                 "--hr-range", "1-2", "--lr-range", "3-3", "--test-range", "801-801") == 0
    assert names(out / "hr") == ["0001.png", "0002.png"] and names(out / "lr_source") == ["0003.png"]
    assert (out / "lr_source.txt").read_text() == f"{(root / 'DIV2K_train_HR' / '0003.png').absolute()}\n"


def test_rerun_refuses_a_folder_holding_something_adl_did_not_write(tmp_path, capsys):
    root, out = fake_div2k(tmp_path / "DIV2K", [1, 2, 801]), tmp_path / "split"
    argv = ["--protocol", "div2k", "--root", root, "--output", out, "--hr-range", "1-1", "--lr-range", "2-2",
            "--test-range", "801-801"]
    assert split(capsys, *argv) == 0
    touch_images(out / "lr_source", "mine.png")
    assert_one_error(capsys, argv, out / "lr_source" / "mine.png")
    assert names(out / "lr_source") == ["0002.png", "mine.png"] and names(out / "hr") == ["0001.png"]


# -- the sample protocol and adl sample-data ----------------------------------------------------------
def test_sample_split_writes_disjoint_crops_divisible_by_4(tmp_path, capsys):
    out = tmp_path / "split"
    assert split(capsys, "--protocol", "sample", "--output", out) == 0
    assert names(out / "hr") == ["astronaut.png", "coffee.png", "motorcycle_left.png"]
    assert names(out / "lr_source") == ["chelsea.png", "motorcycle_right.png", "rocket.png"]
    assert len(names(out / "test_hr")) == 6  # the held-out right-hand crop of every photo
    for part in ("hr", "lr_source", "test_hr"):
        assert (out / f"{part}.txt").read_text().splitlines() == [str(p) for p in visible(out / part)]
        for path in visible(out / part):
            assert not path.is_symlink()
            h, w = read_image(path).shape[:2]
            assert h % 4 == 0 and w % 4 == 0, (path, h, w)


# Recorded from `adl sample-data --scale 2 --kernel k3` before it was rebuilt on sample_split (the rebuilt
# one also gave byte-identical files at ×2 and ×4).
SAMPLE_DATA_X2 = {
    "hr": {"astronaut": (512, 336), "coffee": (400, 400), "motorcycle_left": (500, 488)},
    "lr": {"chelsea": (150, 148), "motorcycle_right": (250, 244), "rocket": (213, 212)},
    "test_hr": {"astronaut": (512, 176), "chelsea": (300, 154), "coffee": (400, 200), "motorcycle_left": (500, 252),
                "motorcycle_right": (500, 252), "rocket": (426, 216)},
    "test_lr": {"astronaut": (256, 88), "chelsea": (150, 77), "coffee": (200, 100), "motorcycle_left": (250, 126),
                "motorcycle_right": (250, 126), "rocket": (213, 108)},
}


def test_sample_data_is_unchanged(tmp_path, capsys):
    assert main(["-q", "sample-data", "--output", str(tmp_path), "--kernel", "k3", "--scale", "2"]) == 0
    got = {part: {p.stem: read_image(p).shape[:2] for p in (tmp_path / part).iterdir()} for part in SAMPLE_DATA_X2}
    assert got == SAMPLE_DATA_X2
    assert names(tmp_path) == ["hr", "lr", "test_hr", "test_lr"]


def test_every_photo_set_splits_into_disjoint_tiles_and_the_default_is_unchanged():
    """issue 16: the sample protocol's photo sets (adl.choices.PHOTO_SETS), all from installed packages."""
    from adl.choices import PHOTO_SETS
    from adl.data.sample_data import sample_split

    default = sample_split(4, 128)
    assert (len(default["hr"]), len(default["lr_source"])) == (20, 28)  # docs/fidelity.md's tiles protocol
    for photos in PHOTO_SETS:
        parts = sample_split(4, 128, photos=photos)
        assert parts["hr"] and parts["lr_source"] and parts["test_hr"], photos
        assert not set(parts["hr"]) & set(parts["lr_source"]), photos
        for image in (*parts["hr"].values(), *parts["lr_source"].values()):
            assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        untiled = sample_split(4, photos=photos)
        assert untiled["hr"] and untiled["lr_source"], photos


def test_photos_option_reaches_the_split(tmp_path):
    from adl.cli import main as adl_main

    assert adl_main(["-q", "split", "--protocol", "sample", "--photos", "smooth", "--tile", "128",
                     "--output", str(tmp_path)]) == 0
    names = (tmp_path / "hr.txt").read_text()
    assert "retina-" in names and "astronaut" not in names
