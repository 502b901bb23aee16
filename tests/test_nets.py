"""The downsampler G and discriminator D of method.md §2–§3, checked by behaviour.

Facts are tested from the outside (parameter counts, shapes, what the output depends on)
rather than by re-reading the module layout, so that a wrong layer shows up as a failure.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adl.nets import Discriminator, Downsampler


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_weights_and_biases(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs, "model has no convolutions"
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    biases = torch.cat([m.bias.detach().flatten() for m in convs if m.bias is not None])
    return weights, biases


@pytest.fixture(scope="module")
def full_g() -> Downsampler:
    torch.manual_seed(0)
    return Downsampler()


@pytest.fixture(scope="module")
def full_d() -> Discriminator:
    torch.manual_seed(0)
    return Discriminator()


# --- parameter counts (method.md §2, §3) -----------------------------------------------------


def test_downsampler_parameter_count(full_g):
    assert n_params(full_g) == 887_683


def test_discriminator_parameter_count(full_d):
    assert n_params(full_d) == 17_423_489


def test_all_parameters_are_trainable(full_g, full_d):
    assert all(p.requires_grad for p in full_g.parameters())
    assert all(p.requires_grad for p in full_d.parameters())


# --- shapes ----------------------------------------------------------------------------------


def test_downsampler_full_width_halves_a_128_patch(full_g):
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        y = full_g(x)
    assert y.shape == (2, 3, 64, 64)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("h, w", [(128, 128), (250, 170), (34, 46)])
def test_downsampler_halves_any_even_size(h, w):
    torch.manual_seed(1)
    g = Downsampler(width=8)
    with torch.no_grad():
        y = g(torch.rand(1, 3, h, w) * 2 - 1)
    assert y.shape == (1, 3, h // 2, w // 2)


def test_discriminator_gives_3x3_logits_for_a_64_patch(full_d):
    with torch.no_grad():
        y = full_d(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert y.shape == (2, 1, 3, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("size, out", [(64, 3), (128, 7)])
def test_small_discriminator_shapes(size, out):
    torch.manual_seed(2)
    d = Discriminator(width=8)
    with torch.no_grad():
        y = d(torch.rand(1, 3, size, size) * 2 - 1)
    assert y.shape == (1, 1, out, out)


def test_width_scales_the_networks():
    # Conv parameters grow about quadratically in width; a width-8 G is far smaller.
    assert n_params(Downsampler(width=8)) < n_params(Downsampler(width=16)) < 887_683
    assert n_params(Discriminator(width=8)) < 17_423_489 // 40


# --- initialisation: N(0, 0.02) weights, zero biases ----------------------------------------


@pytest.mark.parametrize("which", ["G", "D"])
def test_weights_are_normal_0_002_and_biases_zero(which, full_g, full_d):
    model = full_g if which == "G" else full_d
    w, b = conv_weights_and_biases(model)
    assert abs(w.std().item() - 0.02) < 0.001
    assert abs(w.mean().item()) < 0.001
    # Gaussian, not uniform: about 68.3% of draws lie within one standard deviation.
    inside = (w.abs() < 0.02).float().mean().item()
    assert abs(inside - 0.683) < 0.01
    assert torch.count_nonzero(b) == 0


# --- the global skip -------------------------------------------------------------------------


def test_zero_tail_leaves_exactly_the_2x2_average():
    torch.manual_seed(3)
    g = Downsampler(width=8)
    tail = [m for m in g.modules() if isinstance(m, nn.Conv2d)][-1]
    assert tail.out_channels == 3 and tail.kernel_size == (1, 1)
    with torch.no_grad():
        tail.weight.zero_()
        tail.bias.zero_()
        x = torch.rand(2, 3, 40, 24) * 2 - 1
        y = g(x)
    assert torch.equal(y, F.avg_pool2d(x, 2))


def test_untrained_downsampler_differs_from_the_average():
    # Guard for the test above: with the tail intact the body does contribute.
    torch.manual_seed(3)
    g = Downsampler(width=8)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (g(x) - F.avg_pool2d(x, 2)).abs().max() > 1e-4


def test_residual_is_blind_to_input_brightness_and_contrast():
    # The head conv is followed by InstanceNorm without affine, so the body (hence the tail's
    # output) ignores a positive affine change a·x + b of the input; only the skip sees it.
    torch.manual_seed(4)
    g = Downsampler(width=8).double()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.3)
        x = torch.rand(1, 3, 32, 32, dtype=torch.float64) - 0.5
        r1 = g(x) - F.avg_pool2d(x, 2)
        x2 = 3.0 * x + 0.25
        r2 = g(x2) - F.avg_pool2d(x2, 2)
    assert r1.abs().max() > 1e-2
    assert torch.allclose(r1, r2, atol=1e-4)


# --- receptive field: 32 HR pixels ---------------------------------------------------------


def linearised(model: nn.Module) -> nn.Module:
    """A copy with every InstanceNorm and ReLU replaced by identity: only the convs remain."""
    model = copy.deepcopy(model)

    def strip(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, (nn.InstanceNorm2d, nn.ReLU)):
                setattr(module, name, nn.Identity())
            else:
                strip(child)

    strip(model)
    return model


def test_receptive_field_is_32_hr_pixels_centred_on_the_grid():
    # InstanceNorm makes every output depend on the whole image, so the conv structure's
    # receptive field is measured on a copy without norms and nonlinearities. LR pixel i is
    # centred on HR 2i + 0.5 (method.md §1), so its 32-pixel window is HR [2i − 15, 2i + 16].
    torch.manual_seed(5)
    g = linearised(Downsampler(width=8)).double()
    x = torch.rand(1, 3, 80, 80, dtype=torch.float64, requires_grad=True)
    i, j = 20, 19
    g(x)[0, 1, i, j].backward()
    support = x.grad[0].abs().sum(0) != 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    assert (rows.min().item(), rows.max().item()) == (2 * i - 15, 2 * i + 16)
    assert (cols.min().item(), cols.max().item()) == (2 * j - 15, 2 * j + 16)


# --- InstanceNorm: no affine, no running statistics ------------------------------------------


def test_discriminator_has_instancenorm_by_default_and_none_on_request(full_d):
    # method.md §3: InstanceNorm without affine after every conv but the last; norm="none" drops it.
    def norms(model):
        return [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]

    assert full_d.norm == "instance"
    assert len(norms(full_d)) == 5 and not any(m.affine or m.track_running_stats for m in norms(full_d))
    plain = Discriminator(width=8, norm="none")
    assert norms(plain) == [] and n_params(plain) == n_params(Discriminator(width=8))


def test_downsampler_has_no_buffers(full_g):
    assert list(full_g.buffers()) == []


def test_discriminator_has_no_buffers(full_d):
    assert list(full_d.buffers()) == []


@pytest.mark.parametrize("which", ["G", "D"])
def test_train_and_eval_give_the_same_output(which):
    torch.manual_seed(6)
    model = Downsampler(width=8) if which == "G" else Discriminator(width=8)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        model.train()
        a = model(x)
        model(torch.rand(2, 3, 64, 64) * 5)  # would move running stats if there were any
        model.eval()
        b = model(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("which", ["G", "D"])
def test_samples_in_a_batch_are_normalised_independently(which):
    # InstanceNorm, not BatchNorm: a sample's output does not depend on its batch mates.
    torch.manual_seed(7)
    model = Downsampler(width=8) if which == "G" else Discriminator(width=8)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    x[1] *= 0.1
    with torch.no_grad():
        batched = model(x)
        alone = torch.cat([model(x[k : k + 1]) for k in range(3)])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_local_discriminator_sees_a_7x7_window_only():
    """--disc-view local (issue 16): one logit per 7×7 LR window, as KernelGAN's D."""
    from adl.nets.discriminator import build_discriminator

    torch.manual_seed(0)
    D = build_discriminator("local", 8, "none")
    x = torch.randn(1, 3, 32, 32)
    out = D(x)
    assert out.shape == (1, 1, 26, 26)
    y = x.clone()
    y[0, :, 20, 20] += 1.0
    changed = (D(y) != out)[0, 0].nonzero()
    assert changed[:, 0].min() >= 14 and changed[:, 0].max() <= 20  # windows starting at rows 14..20
    assert changed[:, 1].min() >= 14 and changed[:, 1].max() <= 20
