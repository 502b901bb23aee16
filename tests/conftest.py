"""Shared fixtures: small HR/LR folders cut from scikit-image's bundled photos (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from adl.degradation import degrade
from adl.imageio import write_png
from adl.kernels import synthetic_kernel


def photo(name: str) -> np.ndarray:
    return getattr(data, name)()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """SLURM tests first: CI's one-node cluster was seen gone after 15 minutes of the suite (2026-12-02),
    and they need it only for their own two minutes."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


@pytest.fixture(scope="session")
def unpaired_sets(tmp_path_factory) -> dict[str, Path]:
    """HR crops from two photos; LR = k3-degraded crops of two other photos (unpaired, as in §8)."""
    root = tmp_path_factory.mktemp("unpaired")
    hr, src, lr = root / "hr", root / "src", root / "lr"
    for name, (y, x) in {"astronaut": (40, 160), "coffee": (100, 200)}.items():
        write_png(hr / f"{name}.png", photo(name)[y : y + 128, x : x + 128])
    kernel = synthetic_kernel("k3", 2)
    for name, (y, x) in {"chelsea": (60, 120), "rocket": (100, 150)}.items():
        crop = photo(name)[y : y + 96, x : x + 96]
        write_png(src / f"{name}.png", crop)
        write_png(lr / f"{name}.png", degrade(crop, kernel, 2))
    return {"hr": hr, "lr": lr, "src": src, "root": root}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets on busy shared cores: one thread avoids OpenMP barrier stalls (2 threads measured
    ~0.8 s per tiny forward under load, 1 thread ~3 ms). Modules opt in with usefixtures."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

