"""Fixed-kernel references for issue 16's tables: the untrained G's 2×2 box and the bicubic kernel,
applied to each set's test HR and scored as Table 1 scores G (LR PSNR against the true LR, shave 8;
similarity of the kernel to the true one).   python docs/fidelity/issue16/baselines.py > baselines.csv"""

import sys
from pathlib import Path

import numpy as np

from adl.choices import KERNEL_NAMES, LR_SHAVE
from adl.degradation import degrade
from adl.imageio import list_images, read_image
from adl.kernels import resolve_kernel
from adl.metrics import finite_mean, kernel_similarity, psnr

sys.path.insert(0, "scripts")
from discriminator_check import box  # noqa: E402

print("set,kernel,fixed,lr_psnr,kernel_similarity")
for data in sorted(p for p in Path("/tmp/adl16").glob("*-k*") if p.is_dir() and p.name.count("-") == 1):
    photos, kname = data.name.split("-")
    true = resolve_kernel(kname if kname in KERNEL_NAMES else "docs/fidelity/issue16/ka.npy", 2)
    for fixed, kernel in (("box", box(2)), ("bicubic", resolve_kernel("k0", 2))):
        values = [psnr(degrade(read_image(hr), kernel, 2), read_image(data / "test_lr" / hr.name), LR_SHAVE)
                  for hr in list_images(data / "test_hr")]
        print(f"{photos},{kname},{fixed},{finite_mean(values):.4f},{kernel_similarity(kernel, true):.4f}")
