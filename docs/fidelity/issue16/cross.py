"""Does G learn *its* kernel? Each trained G of a photo set, applied to the set's test HR, scored against
the true test LR of every kernel of that set (LR PSNR, shave 8, as Table 1). A G that learned the kernel
of its LR side scores best against that kernel; a gain that every G shares, whatever its LR side, is not
kernel learning.
  OMP_NUM_THREADS=1 python docs/fidelity/issue16/cross.py > docs/fidelity/issue16/cross.csv
(the thread count can change a fourth decimal: convolution sums are reordered)
Reads the runs of docs/fidelity/issue16/train.sh under /tmp/adl16 and, for skimage, the run folders of a
config/cpu.yaml workflow run in the folder $CPU_RUN (default: here, where that workflow writes them; the
figures in cross.csv came from a fresh clone that ran it)."""

import os
from pathlib import Path

import torch

from adl.choices import LR_SHAVE
from adl.downsampler.apply import downsample_image, load_downsampler
from adl.imageio import list_images, read_image
from adl.metrics import finite_mean, psnr

CPU = torch.device("cpu")
ROOT, CPU_RUN = Path("/tmp/adl16"), Path(os.environ.get("CPU_RUN", "."))


def sets():
    """(set, test HR folder, {kernel: true test LR folder}, {(term, kernel): G run folder})."""
    for photos in ("varied", "smooth"):
        kernels = ("k2", "k3", "k4", "ka")
        # adl-noadv: ADL with --alpha 1e6, i.e. the data term alone (Adam cancels the scale): what G
        # becomes without any information from the LR side.
        # adl-s1, adl-s2: ADL with seeds 1 and 2, to see whether the kernel-specific part survives them.
        runs = {(term, k): ROOT / "runs" / f"{photos}-{k}-{run}" for term, run in (
            ("adl", "adl-uniform-s0"), ("bicubic", "bicubic-uniform-s0"), ("adl-noadv", "adl-noadv-s0"),
            ("adl-s1", "adl-uniform-s1"), ("adl-s2", "adl-uniform-s2")) for k in kernels}
        yield (photos, ROOT / f"{photos}-k3" / "test_hr", {k: ROOT / f"{photos}-{k}" / "test_lr" for k in kernels},
               {key: run for key, run in runs.items() if (run / "checkpoint.pt").exists()})
    kernels = ("k1", "k2", "k3", "k4")
    runs = {(term, k): next((CPU_RUN / "results/cpu/x2" / k).glob(f"down-{term}-*"))
            for term in ("adl", "bicubic", "lfl") for k in kernels}
    yield ("skimage", CPU_RUN / "resources/cpu/split/test_hr",
           {k: CPU_RUN / "resources/cpu/x2" / k / "test_hr_lr" for k in kernels}, runs)


print("set,term,trained_on,scored_against,lr_psnr")
for photos, test_hr, truths, runs in sets():
    hr = {p.name: read_image(p) for p in list_images(test_hr)}
    lr = {k: {name: read_image(folder / name) for name in hr} for k, folder in truths.items()}
    candidates = {("truth", k): None for k in truths} | runs
    for (term, trained_on), run in candidates.items():
        if run is None:  # the true LR of one kernel against another's: how far apart the kernels are
            preds = lr[trained_on]
        else:
            G, _ = load_downsampler(run, CPU)
            preds = {name: downsample_image(G, image, 2, CPU) for name, image in hr.items()}
        for k in truths:
            value = finite_mean([psnr(preds[name], lr[k][name], LR_SHAVE, name=name) for name in hr])
            print(f"{photos},{term},{trained_on},{k},{value:.4f}", flush=True)
