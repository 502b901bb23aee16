"""Scoring an SR checkpoint the way the paper does, and super-resolving folders of photos.

PSNR is RGB uint8 with s + 6 pixels shaved per border (method.md §1); SSIM is scikit-image's
on the same shaved RGB images (channel_axis, data_range 255). Whole images go through the tiled
path of adl.tiling, which equals whole-image inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from adl.atomic import file_sha256, write_text
from adl.choices import DEFAULT_TILE, sr_shave
from adl.degradation import check_pair, crop_to_scale
from adl.errors import AdlError
from adl.fastpath import exact_fp32
from adl.imageio import (
    list_images,
    pair_by_stem,
    read_image,
    require_unique_stems,
    write_png,
)
from adl.metrics import finite_mean, psnr, ssim
from adl.progress import progress
from adl.sr.model import load_sr_model
from adl.tiling import upscale_image


def evaluate_sr(checkpoint: str | Path, lr_dir: str | Path, hr_dir: str | Path, scale: int, output: str | Path,
                device: torch.device, save_dir: str | Path | None = None, tile: int = DEFAULT_TILE,
                tags: dict[str, str] | None = None) -> dict:
    """Score ``checkpoint`` on the LR/HR pairs and write metrics.json; ``tags`` (the workflow's labels
    of the run: method, model, scale, kernel, …) are stored in it as given."""
    exact_fp32()  # TF32 would make tiled and whole-image results differ by ~1e-3 on CUDA
    model, config, ckpt_path = load_sr_model(checkpoint, device, scale)
    pairs = pair_by_stem(list_images(lr_dir, what="--lr"), list_images(hr_dir, what="--hr"), "--lr", "--hr")
    if save_dir is not None:
        for flag, folder in (("--lr", lr_dir), ("--hr", hr_dir)):
            if Path(save_dir).exists() and Path(save_dir).resolve() == Path(folder).resolve():
                raise AdlError(f"--save-dir {save_dir}: same folder as {flag}; the SR images would overwrite its files")
    shave = sr_shave(scale)
    rows = []
    for lr_path, hr_path in progress(pairs, desc="evaluate-sr", unit="img"):
        lr, hr = read_image(lr_path), crop_to_scale(read_image(hr_path), scale)
        check_pair(hr, lr, scale, hr_path, lr_path)
        sr = upscale_image(model, lr, scale, device, tile)
        if save_dir is not None:
            write_png(Path(save_dir) / f"{lr_path.stem}.png", sr)
        rows.append({"image": lr_path.stem, "psnr": psnr(sr, hr, shave, name=str(lr_path)),
                     "ssim": ssim(sr, hr, shave, name=str(hr_path))})
    result = {
        "tags": dict(tags or {}),
        "checkpoint": str(ckpt_path),
        "checkpoint_sha256": file_sha256(ckpt_path),
        "config": config,
        "scale": scale,
        "shave": shave,
        "images": len(rows),
        "psnr": finite_mean(r["psnr"] for r in rows),
        "ssim": sum(r["ssim"] for r in rows) / len(rows),
        "per_image": rows,
    }
    write_text(output, json.dumps(result, indent=2, allow_nan=True) + "\n")
    return result


def upscale_folder(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path, device: torch.device,
                   tile: int = DEFAULT_TILE) -> int:
    exact_fp32()  # TF32 would make tiled and whole-image results differ by ~1e-3 on CUDA
    model, config, _ = load_sr_model(checkpoint, device)
    paths = require_unique_stems(list_images(input_dir, what="--input"), "--input")
    out = Path(output_dir)
    if out.exists() and out.resolve() == Path(input_dir).resolve():
        raise AdlError(f"--output {out}: same folder as --input; outputs would overwrite inputs")
    for path in progress(paths, desc=f"upscale ×{config['scale']}", unit="img"):
        write_png(out / f"{path.stem}.png", upscale_image(model, read_image(path), config["scale"], device, tile))
    return len(paths)
