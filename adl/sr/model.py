"""The SR networks by name, and loading them from a training checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adl.choices import SR_DEFAULT_SIZES, SR_MODELS
from adl.errors import AdlError
from adl.runs import read_checkpoint

CHECKPOINT_KIND = "adl-sr"




def build_sr_model(model: str, scale: int, n_feats: int | None = None, n_blocks: int | None = None) -> nn.Module:
    from adl.nets import EDSR, RRDBNet

    if model not in SR_MODELS:
        raise AdlError(f"--model {model}: unknown; choose from {', '.join(SR_MODELS)}")
    feats, blocks = SR_DEFAULT_SIZES[model]
    feats, blocks = n_feats or feats, n_blocks or blocks
    if model == "edsr":
        return EDSR(scale, n_resblocks=blocks, n_feats=feats)
    return RRDBNet(scale, n_feats=feats, n_blocks=blocks)


def load_sr_model(path: str | Path, device: torch.device, scale: int | None = None) -> tuple[nn.Module, dict, Path]:
    """An SR network from a training checkpoint (or its run folder); checks ``scale`` if given."""
    ckpt, path = read_checkpoint(path, CHECKPOINT_KIND, "SR")
    try:
        config = ckpt["config"]
        model = build_sr_model(config["model"], config["scale"], config["n_feats"], config["n_blocks"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AdlError(f"--checkpoint {path}: incomplete or damaged SR checkpoint ({type(exc).__name__})") from None
    if scale is not None and scale != config["scale"]:
        raise AdlError(f"--scale {scale}: {path} is a ×{config['scale']} {config['model']} model; "
                       f"pass --scale {config['scale']} or a ×{scale} checkpoint")
    return model.to(device).eval(), config, path
