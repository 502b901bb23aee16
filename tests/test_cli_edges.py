"""Issue 12 §5: exit codes that mean what they say, -q anywhere, messages that name the right option."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_one_error

from adl.cli import build_parser
from adl.imageio import write_png


@pytest.fixture
def hr(tmp_path):
    write_png(tmp_path / "hr" / "a.png", np.full((16, 16, 3), 7, np.uint8))
    return tmp_path / "hr"


@pytest.mark.parametrize("argv, option", [
    (["train-downsampler", "--hr", "h", "--lr", "l", "--output", "o", "--lr-rate", "nan"], "--lr-rate"),
    (["train-downsampler", "--hr", "h", "--lr", "l", "--output", "o", "--alpha", "-1"], "--alpha"),
    (["train-sr", "--hr", "h", "--lr-source", "bicubic", "--output", "o", "--lr-rate", "nan"], "--lr-rate"),
    (["degrade", "--input", "h", "--output", "o", "--scale", "2", "--kernel", "k0", "--device", "gpu"], "--device"),
    (["psnr", "--pred", "p", "--target", "t", "--shave", "-1"], "--shave"),
])
def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch, argv, option):
    monkeypatch.chdir(tmp_path)
    assert_one_error(capsys, argv, option, code=2)
    assert not (tmp_path / "o").exists()


def test_option_cross_checks_are_usage_errors_too(tmp_path, capsys, hr):
    out = tmp_path / "run"
    assert_one_error(capsys, ["train-downsampler", "--hr", hr, "--lr", hr, "--output", out, "--kernel-size", "7",
                              "--device", "cpu"], "--kernel-size 7", code=2)
    assert not out.exists()


def test_data_and_environment_errors_exit_1(tmp_path, capsys, hr):
    assert_one_error(capsys, ["degrade", "--input", tmp_path / "none", "--output", tmp_path / "o", "--scale", "2",
                              "--kernel", "k0"], "--input", code=1)


@pytest.mark.parametrize("argv", [
    ["generate", "-q", "--model", "m", "--hr", "h", "--output", "o"],
    ["generate", "--model", "m", "--hr", "h", "--output", "o", "--quiet"],
    ["-q", "generate", "--model", "m", "--hr", "h", "--output", "o"],
    ["figure", "curves", "-q", "--output", "f.png", "log.csv"],
])
def test_quiet_before_or_after_the_command(argv):
    assert build_parser().parse_args(argv).quiet is True
    assert build_parser().parse_args([a for a in argv if a not in ("-q", "--quiet")]).quiet is False


def test_quiet_after_the_command_silences_info(tmp_path, capsys, hr):
    from adl.cli import main

    capsys.readouterr()
    assert main(["degrade", "-q", "--input", str(hr), "--output", str(tmp_path / "o"), "--scale", "2",
                 "--kernel", "k0", "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ""


# -- export --opset ----------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", ["17", "99", "12"])
def test_untested_opsets_are_refused_up_front(tmp_path, capsys, opset):
    """Before issue 12 these printed an onnxscript traceback, exited 0 and wrote an opset-18 file."""
    out = tmp_path / "g.onnx"
    line = assert_one_error(capsys, ["export", "--checkpoint", tmp_path / "missing", "--output", out,
                                     "--opset", opset], f"--opset {opset}", "18", code=2)
    assert "not supported" in line and not out.exists()


def test_a_written_opset_other_than_the_one_asked_for_is_refused(tmp_path, monkeypatch):
    """The exporter is replaced by one that writes opset 17 whatever it is asked: nothing is written."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    import adl.downsampler.export as export
    from adl.downsampler.apply import CHECKPOINT_KIND
    from adl.errors import AdlError
    from adl.nets import Downsampler

    def fake_export(module, path, opset):
        x = helper.make_tensor_value_info("hr", TensorProto.FLOAT, [1, 3, None, None])
        graph = helper.make_graph([helper.make_node("Identity", ["hr"], ["lr"])], "g", [x],
                                  [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 3, None, None])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))

    monkeypatch.setattr(export, "_export", fake_export)
    monkeypatch.setattr(export, "check_parity", lambda *args: 0.0)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"kind": CHECKPOINT_KIND, "config": {"width": 4, "scale": 2}, "G": Downsampler(4).state_dict()},
               run / "checkpoint.pt")
    out = tmp_path / "g.onnx"
    with pytest.raises(AdlError, match="produced opset 17, not the --opset 18"):
        export.export_onnx(run, out, opset=18)
    assert not out.exists()
    export.export_onnx(run, out)  # no --opset: whatever the exporter writes is kept
    assert out.exists()


# -- upscale --tile ----------------------------------------------------------------------------------
def test_tile_16_is_within_float_rounding_of_whole_image_inference():
    """The issue's --tile 16, on a narrow EDSR to stay fast: the documented bound is 1e-4 in [0, 1]
    before rounding, so at most one 8-bit level after it."""
    import torch
    from skimage import data

    from adl.sr.model import build_sr_model
    from adl.tiling import upscale_image, upscale_tiled

    torch.manual_seed(0)
    model = build_sr_model("edsr", 2, 16, 4).eval()
    image = data.chelsea()[60:108, 100:148]
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.no_grad():
        whole = model(x)
    tiled = upscale_tiled(model, x, 2, tile=16)
    assert (tiled - whole).abs().max().item() <= 1e-4
    levels = np.abs(upscale_image(model, image, 2, tile=16).astype(int)
                    - upscale_image(model, image, 2, tile=10_000).astype(int))
    assert levels.max() <= 1


def test_generate_names_model_not_checkpoint(tmp_path, capsys, hr):
    line = assert_one_error(capsys, ["generate", "--model", tmp_path / "no_run", "--hr", hr, "--output",
                                     tmp_path / "out", "--backend", "torch", "--device", "cpu"], "--model")
    assert "--checkpoint" not in line
