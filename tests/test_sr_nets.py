"""The SR networks of method.md §7, exact tiled inference, and VGG-19 loading (issue 3).

Facts are checked from the outside: parameter counts, what an output pixel depends on (by
gradients), whole-image vs tiled output, and which weight files are accepted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import vgg16_state_dict
from torch import nn

from adl.errors import AdlError
from adl.nets import EDSR, RRDB, RRDBNet, VGG19Features, load_vgg19_features
from adl.tiling import upscale_image, upscale_tiled

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny_edsr(scale: int) -> EDSR:
    torch.manual_seed(0)
    return EDSR(scale, n_resblocks=2, n_feats=8)


def tiny_rrdb(scale: int) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(scale, n_feats=8, n_blocks=1, growth=4)


TINY = {"edsr": tiny_edsr, "rrdb": tiny_rrdb}


# --- parameter counts and shapes -------------------------------------------------------------


@pytest.mark.parametrize("scale, expected", [(2, 1_369_859), (4, 1_517_571)])
def test_edsr_baseline_parameter_count(scale, expected):
    model = EDSR(scale)
    assert n_params(model) == expected
    # The mean shift is a constant, not a learnable parameter nor a state-dict entry.
    assert all(p.requires_grad for p in model.parameters())
    assert not any("mean" in k for k in model.state_dict())


def test_rrdb_parameter_count_x4():
    model = RRDB(4)
    assert isinstance(model, RRDBNet)
    assert n_params(model) == 16_697_987
    # ESRGAN's parameter names, so its released state dicts would load.
    keys = model.state_dict().keys()
    assert {"conv_first.weight", "RRDB_trunk.22.RDB3.conv5.bias", "upconv2.weight", "HRconv.weight"} <= keys


@pytest.mark.parametrize("name", ["edsr", "rrdb"])
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shape(name, scale):
    with torch.no_grad():
        y = TINY[name](scale)(torch.rand(2, 3, 7, 5))
    assert y.shape == (2, 3, 7 * scale, 5 * scale)


@pytest.mark.parametrize("model", [EDSR, RRDBNet])
def test_unsupported_scale_is_refused(model):
    with pytest.raises(AdlError, match="scale"):
        model(3)


def test_edsr_mean_shift():
    model = tiny_edsr(4)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 6, 9))
    div2k_mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    assert torch.equal(y, div2k_mean.expand(1, 3, 24, 36))


# --- receptive radius ------------------------------------------------------------------------


def measured_reach(model: nn.Module, scale: int) -> int:
    """Largest LR distance (Chebyshev) at which the s×s output block over the centre LR pixel
    has a nonzero gradient. The image is wide enough that the border never clips the field."""
    model = model.double()
    size = 2 * model.receptive_radius + 5
    c = size // 2
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    model(x)[..., scale * c : scale * (c + 1), scale * c : scale * (c + 1)].sum().backward()
    ys, xs = np.nonzero(x.grad.abs().sum(dim=(0, 1)).numpy())
    return int(max(np.abs(ys - c).max(), np.abs(xs - c).max()))


@pytest.mark.parametrize("name", ["edsr", "rrdb"])
@pytest.mark.parametrize("scale", [2, 4])
def test_receptive_radius_is_a_tight_upper_bound(name, scale):
    model = TINY[name](scale)
    reach = measured_reach(model, scale)
    assert reach <= model.receptive_radius
    assert reach >= model.receptive_radius - 4


# --- tiling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edsr", "rrdb"])
@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_whole_image(name, scale):
    model = TINY[name](scale).eval()
    torch.manual_seed(1)
    lr = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        whole = model(lr)
    tiled = upscale_tiled(model, lr, scale, tile=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < 1e-5
    # The check can fail: too little context leaves seams.
    seamed = upscale_tiled(model, lr, scale, tile=16, margin=1)
    assert (seamed - whole).abs().max().item() > 1e-3


def test_upscale_image_uint8():
    model = tiny_edsr(2).eval()
    image = np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    out = upscale_image(model, image, 2, "cpu", tile=8)
    with torch.no_grad():
        ref = model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    expected = ref[0].mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    assert out.dtype == np.uint8 and out.shape == (42, 60, 3)
    # Rounding of values within float error of .5 may differ by one grey level.
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert (out == expected).mean() > 0.999


# --- VGG-19 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised VGG-19 saved as torchvision would: features.* plus classifier.*."""
    torch.manual_seed(0)
    vgg = VGG19Features()
    state = dict(vgg.state_dict())
    state["classifier.0.weight"] = torch.randn(8, 4)
    state["classifier.0.bias"] = torch.randn(8)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path, vgg


def test_vgg19_loads_torchvision_layout(vgg_file):
    path, original = vgg_file
    vgg = load_vgg19_features(path)
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 16
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = vgg(x)
        assert y.shape == (1, 512, 4, 4)
        assert torch.equal(y, original(x))
    # conv5_4 before its ReLU: the features take negative values.
    assert (y < 0).any()


def test_vgg19_loads_without_prefix(vgg_file, tmp_path):
    path, _ = vgg_file
    state = torch.load(path, weights_only=True)
    bare = tmp_path / "bare.pth"
    torch.save({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}, bare)
    assert load_vgg19_features(bare)(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)


def test_vgg16_is_refused(tmp_path):
    state = vgg16_state_dict()
    assert sum(k.endswith("weight") for k in state) == 13
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    with pytest.raises(AdlError, match="vgg16.pth.*not a VGG-19.*13 conv"):
        load_vgg19_features(path)


def test_garbage_vgg_file_is_refused(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(AdlError, match="garbage.pth"):
        load_vgg19_features(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(AdlError, match="garbage.pth.*state dict"):
        load_vgg19_features(path)


def test_vgg_loading_is_strict(vgg_file, tmp_path):
    path, _ = vgg_file
    state = torch.load(path, weights_only=True)
    state["features.35.weight"] = torch.zeros(1)  # a key the truncated VGG-19 does not have
    extra = tmp_path / "extra.pth"
    torch.save(state, extra)
    with pytest.raises(AdlError, match="extra.pth.*features.35.weight"):
        load_vgg19_features(extra)
