"""Issue 20: G's memory. Why G is not tiled (InstanceNorm makes it global), the budget arithmetic of
--max-memory, and its one-line errors in `adl downsample`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from adl.downsampler.apply import CHECKPOINT_KIND
from adl.downsampler.memory import (
    BYTES_PER_PIXEL,
    FIXED_BYTES,
    check_image,
    estimate,
    images_in_flight,
)
from adl.errors import AdlError
from adl.imageio import image_pixels, read_image, write_png
from adl.nets import Downsampler
from tests.helpers import assert_one_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

# G's receptive radius in HR pixels, from its layers: head 3×3 (1), four 5×5 units (4 × 2), the 2×2
# stride-2 conv (1), three 3×3 units at half resolution (3 × 1 LR = 6 HR) and the 1×1 tail: 16, the
# "32 HR pixels" field of method.md §2. HALO is well beyond it.
HALO = 40


def without_instance_norm(g: torch.nn.Module) -> torch.nn.Module:
    for module in g.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.InstanceNorm2d):
                setattr(module, name, torch.nn.Identity())
    return g


@pytest.mark.parametrize("instance_norm", [True, False])
def test_a_tile_with_a_full_halo_equals_the_whole_image_only_without_instance_norm(instance_norm):
    """The reason `generate` does not tile G: with the paper's InstanceNorm a tile's statistics are
    not the image's, so no halo makes tiled equal whole; without it, a halo beyond the receptive
    field is exact (bit-identical), so the difference is InstanceNorm's alone."""
    torch.manual_seed(0)
    g = Downsampler(8).eval()
    if not instance_norm:
        without_instance_norm(g)
    x = torch.from_numpy(data.astronaut()[100:196, 120:248].astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    core = 64  # HR columns of the tile's core; the tile is core + HALO wide, the image 128
    with torch.no_grad():
        whole = g(x)[..., : core // 2]
        tiled = g(x[..., : core + HALO])[..., : core // 2]
    diff = (whole - tiled).abs().max().item()
    if instance_norm:
        assert diff > 1e-3, diff  # whole levels of 8-bit output, even for an untrained G
    else:
        assert diff == 0.0, diff


def test_estimate_is_linear_in_pixels_and_images():
    one = estimate("onnxruntime", 1000)
    assert one == FIXED_BYTES["onnxruntime"] + 1000 * (BYTES_PER_PIXEL["onnxruntime"] + 3)
    assert estimate("onnxruntime", 1000, 2) - one == 1000 * (BYTES_PER_PIXEL["onnxruntime"] + 3)
    assert estimate("torch", 1000, 1, read_ahead=4) - estimate("torch", 1000) == 4 * 3 * 1000


def test_images_in_flight_follows_the_budget():
    pixels, ahead = 1020 * 680, 4
    two = estimate("onnxruntime", pixels, 2, ahead)
    assert images_in_flight("onnxruntime", two, pixels, ahead, wanted=2) == 2
    assert images_in_flight("onnxruntime", two - 1, pixels, ahead, wanted=2) == 1
    assert images_in_flight("onnxruntime", 1, pixels, ahead, wanted=2) == 1  # never none: check_image refuses


def test_check_image_refuses_one_past_the_budget():
    need = estimate("torch", 680 * 1020, 1, 2)
    check_image("torch", need, 680, 1020, 2)
    with pytest.raises(AdlError, match=r"1020x680 needs about 1\.\d\d GiB.*--max-memory.*raise --max-memory"):
        check_image("torch", need - 1, 680, 1020, 2)


def test_image_pixels_reads_the_header_and_zero_for_junk(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((5, 7, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not an image")
    assert image_pixels(tmp_path / "a.png") == 35 and image_pixels(tmp_path / "b.png") == 0


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    torch.manual_seed(0)
    (root / "run").mkdir()
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 8, "scale": 2}, "G": Downsampler(8).state_dict()},
               root / "run" / "checkpoint.pt")
    write_png(root / "hr" / "small.png", data.astronaut()[:32, :40])
    write_png(root / "hr" / "wide.png", data.astronaut()[:40, :96])
    return root


def test_downsample_max_memory_below_the_fixed_cost_is_a_usage_error(run_folder, tmp_path, capsys):
    assert_one_error(capsys, ["downsample", "--checkpoint", run_folder / "run", "--input", run_folder / "hr",
                              "--output", tmp_path / "out", "--max-memory", "64M"], "--max-memory", code=2)
    assert not (tmp_path / "out").exists()


def test_downsample_refuses_the_image_over_budget_and_writes_those_before(run_folder, tmp_path, capsys):
    budget = estimate("torch", 32 * 40)  # small.png fits, wide.png does not
    line = assert_one_error(capsys, ["downsample", "--checkpoint", run_folder / "run", "--input", run_folder / "hr",
                                     "--output", tmp_path / "out", "--max-memory", budget], "wide.png", "--max-memory")
    assert "96x40" in line
    assert (tmp_path / "out" / "small.png").exists() and not (tmp_path / "out" / "wide.png").exists()
    # With room for both, the same command writes both; the budget does not change the pixels.
    code, _, err = run_cli(capsys, ["downsample", "--checkpoint", run_folder / "run", "--input", run_folder / "hr",
                                    "--output", tmp_path / "all", "--max-memory", "4G"])
    assert code == 0, err
    assert np.array_equal(read_image(tmp_path / "all" / "small.png"), read_image(tmp_path / "out" / "small.png"))
