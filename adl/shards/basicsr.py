"""BasicSR's dataset for adl shards: importing this module registers ``AdlShardDataset`` in
BasicSR's ``DATASET_REGISTRY``, and ``train`` runs BasicSR's own training pipeline (``adl basicsr-train``).

``AdlShardDataset`` follows BasicSR's ``PairedImageDataset`` step by step, with BasicSR's own
functions, on the arrays BasicSR's loader would have decoded from the same pixels (BGR float32 in
[0, 1]): ``gt_size`` random crop and ``use_hflip``/``use_rot`` in the train phase only, ``color: y``,
then ``mean``/``std``. So a batch is what ``PairedImageDataset`` gives for a PNG folder of the same
samples, under the same Python ``random`` state. Importing ``adl`` never imports BasicSR; only this
module does.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import h5py
import numpy as np

from adl.errors import AdlError
from adl.shards.dataset import ShardDataset

INSTALL = "pip install 'adl[basicsr]' (BasicSR 1.4.2 and lmdb; see the README's 'Train with BasicSR')"


class BasicSRMissing(AdlError, ImportError):
    """BasicSR is not installed: one line saying what to install (an ImportError to Python, an AdlError to the CLI)."""


def _shim_functional_tensor() -> None:
    """BasicSR 1.4.2 imports torchvision.transforms.functional_tensor, which torchvision 0.17 removed; its one
    use (rgb_to_grayscale) lives on in torchvision.transforms.functional. A BasicSR bug, fixed here in memory
    only where the module is missing, so that a stock BasicSR imports beside a current torchvision."""
    name = "torchvision.transforms.functional_tensor"
    try:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            return
    except ImportError:  # no torchvision at all: BasicSR's own import names it below
        return
    from torchvision.transforms import functional

    shim = types.ModuleType(name)
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = shim


def _import_basicsr():
    try:
        _shim_functional_tensor()
        import basicsr  # noqa: F401  (registers BasicSR's own archs, models and datasets)
        from basicsr.utils.registry import DATASET_REGISTRY
    except ImportError as exc:
        raise BasicSRMissing(f"BasicSR does not import ({exc}); install it: {INSTALL}") from None
    return DATASET_REGISTRY


DATASET_REGISTRY = _import_basicsr()

from basicsr.data.transforms import augment, paired_random_crop  # noqa: E402  (after the shim)
from basicsr.utils import bgr2ycbcr, img2tensor  # noqa: E402
from torchvision.transforms.functional import normalize  # noqa: E402

# PairedImageDataset's keys that name files: a shard folder has none of them, so they are refused, not ignored.
FILE_KEYS = ("dataroot_gt", "dataroot_lq", "meta_info_file", "filename_tmpl")


def sample_names(dataset: ShardDataset) -> list[str]:
    """``<source>_<k>.png`` per sample, the name ``adl generate --format png`` gives the same pair (k: the
    patch's number within its image, 3 digits); ``<source>_<global index>.png`` if two HR files share a stem."""
    n = dataset.manifest["options"]["patches_per_image"]
    sources: list[str] = []
    for name in dataset.files:
        with h5py.File(dataset.shard_dir / name, "r") as f:
            sources.extend(f["source"].asstr()[()])
    names = [f"{source}_{g % n:03d}.png" for g, source in enumerate(sources)]
    if len(set(names)) != len(names):
        names = [f"{source}_{g:0{len(str(len(sources)))}d}.png" for g, source in enumerate(sources)]
    return names


def _option_error(key: str, message: str) -> AdlError:
    return AdlError(f"AdlShardDataset option {key}: {message}")


class AdlShardDataset(ShardDataset):
    """BasicSR options: ``type: AdlShardDataset``, ``dataroot``: the shard folder (``~`` expanded), then
    PairedImageDataset's ``gt_size``, ``use_hflip``, ``use_rot``, ``color``, ``mean``, ``std``, ``io_backend``
    (disk only), and ``phase``/``scale``, which BasicSR fills in from the options file."""

    def __init__(self, opt: dict):
        if not opt.get("dataroot"):
            raise _option_error("dataroot", "missing; set it to the shard folder written by adl generate")
        for key in FILE_KEYS:
            if opt.get(key) is not None:
                raise _option_error(key, "names files, and a shard folder is one dataset; give the folder as "
                                         "dataroot and remove " + key)
        backend = (opt.get("io_backend") or {}).get("type", "disk")
        if backend != "disk":
            raise _option_error("io_backend", f"type {backend!r}: shards are read with h5py; use type: disk "
                                              f"(for LMDB, generate with --format lmdb and use PairedImageDataset)")
        root = os.path.expanduser(str(opt["dataroot"]))
        super().__init__(root, as_dict=True)
        self.opt, self.phase = opt, opt.get("phase", "train")
        self._check_scale(opt.get("scale"))
        self.gt_size = self._gt_size(opt.get("gt_size"))
        self.use_hflip, self.use_rot = bool(opt.get("use_hflip", False)), bool(opt.get("use_rot", False))
        self.color = opt.get("color")
        if self.color not in (None, "y"):
            raise _option_error("color", f"{self.color!r}: BasicSR knows only y (luminance); use color: y or remove it")
        self.mean, self.std = opt.get("mean"), opt.get("std")
        self.names = sample_names(self)

    def _check_scale(self, scale) -> None:
        if scale is not None and int(scale) != self.scale:
            raise _option_error("scale", f"{scale}, but {self.shard_dir} holds ×{self.scale} pairs (its "
                                         f"manifest.json); set scale: {self.scale} or generate ×{scale} shards")

    def _gt_size(self, gt_size) -> int | None:
        """The train crop; None (no crop) outside the train phase or when the stored patch is wanted whole."""
        patch = int(self.manifest["options"]["patch"])
        if self.phase != "train" or gt_size is None:
            return None
        gt_size = int(gt_size)
        if gt_size > patch:
            raise _option_error("gt_size", f"{gt_size} is larger than the {patch}x{patch} patches in "
                                           f"{self.shard_dir}; lower gt_size or generate with --patch {gt_size}")
        if gt_size % self.scale or gt_size < self.scale:
            raise _option_error("gt_size", f"{gt_size} is not a positive multiple of the scale {self.scale}; "
                                           f"the LR crop would not align")
        return gt_size

    def __getitem__(self, index: int) -> dict:
        lr, hr = self.raw(index)
        # What BasicSR's imfrombytes(..., float32=True) returns for these pixels: BGR, float32, /255.
        img_gt = hr[..., ::-1].astype(np.float32) / 255.0
        img_lq = lr[..., ::-1].astype(np.float32) / 255.0
        shard, _ = self._locate(index)
        where = self.shard_dir / self.files[shard]
        gt_path, lq_path = f"{where}#hr/{self.names[index]}", f"{where}#lr/{self.names[index]}"
        if self.phase == "train":
            if self.gt_size is not None:
                img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.gt_size, self.scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.use_hflip, self.use_rot)
        if self.color == "y":
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {"lq": img_lq, "gt": img_gt, "lq_path": lq_path, "gt_path": gt_path}


DATASET_REGISTRY.register()(AdlShardDataset)


def train(options_file: str, basicsr_args: list[str]) -> None:
    """BasicSR's train_pipeline on ``options_file`` with experiments/ (and tb_logger/) in the working
    directory, not beside the installed BasicSR; ``basicsr_args`` (--auto_resume, --debug, --force_yml ...)
    are passed to BasicSR's own option parser."""
    from basicsr.train import train_pipeline

    path = Path(options_file).expanduser()
    if not path.is_file():
        raise AdlError(f"-opt {options_file}: no such file; give a BasicSR options file (e.g. examples/basicsr_edsr_x2.yml)")
    argv = sys.argv
    # BasicSR's parse_options reads sys.argv itself: give it exactly what its own train.py would get.
    sys.argv = ["basicsr-train", "-opt", str(path), *basicsr_args]
    try:
        train_pipeline(os.getcwd())
    finally:
        sys.argv = argv
