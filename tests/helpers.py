"""Helpers shared by the test files: the `adl` command line run in-process, its one-line errors, test data."""

from __future__ import annotations

from pathlib import Path

import torch

from adl.cli import main


def run_cli(capsys, argv) -> tuple[int, str, str]:
    """Run ``adl -q ...``; argparse usage errors (SystemExit) count as their exit code."""
    capsys.readouterr()
    try:
        code = main(["-q", *map(str, argv)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(capsys, argv, *names, code: int = 1) -> str:
    """Exit ``code`` and exactly one ``adl ... error`` line on stderr that contains every one of ``names``.

    Other stderr lines may only be logged warnings (still shown under ``-q``): no second error, nothing
    indented (a traceback's frames or a message spilling over several lines).
    """
    got, _, err = run_cli(capsys, argv)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("adl ") and "error" in line]
    assert len(errors) == 1, err
    others = [line for line in err.splitlines() if line and line not in errors]
    assert not any(line[0].isspace() or "error:" in line.lower() for line in others), err
    assert got == code, err
    for name in names:
        assert str(name) in errors[0], f"{name!r} not named in: {errors[0]}"
    return errors[0]


def leftovers(folder: Path) -> list[Path]:
    """adl's hidden temporaries (``.name.*.part*``) anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob(".*") if ".part" in p.name)


def vgg16_state_dict() -> dict[str, torch.Tensor]:
    """A torchvision-layout VGG-16 feature state dict (13 convs): what a VGG-19 loader must refuse."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    state, index, c_in = {}, 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.zeros(v, c_in, 3, 3)
        state[f"features.{index}.bias"] = torch.zeros(v)
        index, c_in = index + 2, v
    return state


def write_tiny_world(root: Path) -> tuple[Path, Path]:
    """12 small HR crops of scikit-image's photos and a width-4 G checkpoint with fixed random weights:
    the inputs of the shard integrity and BasicSR tests. Returns (hr folder, run folder)."""
    from skimage import data

    from adl.downsampler.apply import CHECKPOINT_KIND
    from adl.imageio import write_png
    from adl.nets import Downsampler

    hr = root / "hr"
    for k, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        image = getattr(data, name)()[..., :3]
        for j in range(3):
            write_png(hr / f"{3 * k + j:02d}_{name}.png", image[40 * j : 40 * j + 36, 30 * j : 30 * j + 40])
    run = root / "run"
    run.mkdir()
    torch.manual_seed(0)
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 4, "scale": 2}, "G": Downsampler(4).state_dict()},
               run / "checkpoint.pt")
    return hr, run
