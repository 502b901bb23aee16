"""VGG-19 features up to conv5_4 for the perceptual loss of method.md §7 (paper eq. 9).

The layers sit exactly where torchvision's ``vgg19().features`` has them, so the ``features.*``
entries of torchvision's VGG-19 state dict load with strict key matching. The module stops at
index 34 (conv5_4, before its ReLU), as ESRGAN's perceptual loss does. Weights come only from a
user-given file: nothing is downloaded and torchvision is not needed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adl.errors import AdlError

# torchvision's configuration "E" (VGG-19): conv widths, "M" = 2×2 max pooling.
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAST_INDEX = 34  # conv5_4 in torchvision's numbering


def conv_shapes() -> dict[int, tuple[int, int]]:
    """torchvision ``features`` index → (out, in) channels of each of the 16 convs."""
    shapes, index, c_in = {}, 0, 3
    for v in VGG19_CFG:
        if v == "M":
            index += 1
        else:
            shapes[index] = (v, c_in)
            index, c_in = index + 2, v  # conv, then its ReLU
    return shapes


class VGG19Features(nn.Module):
    """[0, 1] RGB → conv5_4 features (1/16 resolution, 512 channels), ImageNet-normalised inside."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = v
        self.features = nn.Sequential(*layers[: LAST_INDEX + 1])  # drop conv5_4's ReLU
        # Non-persistent: a torchvision state dict has no such keys, and strict loading must match.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg19_features(path: str | Path) -> VGG19Features:
    """Frozen, eval-mode VGG19Features with weights from a torchvision-style VGG-19 state dict.

    Accepts ``features.N.weight``/``bias`` keys (``classifier.*`` and other non-feature keys are
    ignored) or the same keys without the ``features.`` prefix.
    """
    fix = "give the path of a torchvision VGG-19 state dict (e.g. vgg19-dcbb9e9d.pth)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and I/O errors all mean the same thing to the user
        raise AdlError(f"{path}: cannot read VGG-19 weights ({type(e).__name__}); {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise AdlError(f"{path}: not a state dict of tensors; {fix}")
    if any(k.startswith("features.") for k in state):
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    else:
        state = {f"features.{k}": v for k, v in state.items() if k.split(".")[0].isdigit()}

    n_convs = sum(1 for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)
    for index, (c_out, c_in) in conv_shapes().items():
        weight, bias = state.get(f"features.{index}.weight"), state.get(f"features.{index}.bias")
        if weight is None or bias is None or weight.shape != (c_out, c_in, 3, 3) or bias.shape != (c_out,):
            found = "missing" if weight is None else f"weight {tuple(weight.shape)}"
            raise AdlError(
                f"{path}: not a VGG-19 (features.{index} should be a {c_in}→{c_out} 3×3 conv, {found}; "
                f"{n_convs} conv layers found, VGG-19 has 16); {fix}"
            )

    model = VGG19Features()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise AdlError(f"{path}: keys do not match torchvision's VGG-19 layout ({detail}); {fix}") from None
    model.requires_grad_(False)
    return model.eval()
