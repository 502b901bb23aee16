"""docs/noise.md's three tables from a finished scripts/noise_protocol.sh WORKDIR (markdown on stdout).

  python scripts/noise_tables.py WORKDIR > tables.md

1. downsampler: ADL-n (G trained on the noisy LR) against ADL on the BM3D-denoised LR: LR PSNR of
   G(test HR) against the clean true test LR (Table 1's number) and the kernel similarity of G's
   last validation;
2. noise: the level of the true noisy test LR against that of G(test HR) with the injected noise
   (whole images, made here by adl generate --full-images; same estimator:
   skimage.restoration.estimate_sigma per channel, mean over images), and the fitted (a, b);
3. SR: Table 3's PSNR on the noisy test LR for every source;
and the wall time of each run.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from skimage.restoration import estimate_sigma

from adl.data.noise_model import load_noise_model
from adl.imageio import list_images, read_image
from adl.noise_law import NoiseLaw

VARIANTS = {"adl-n": "ADL-n (noisy LR as is)", "adl-denoise": "ADL on BM3D-denoised LR",
            "adl-denoise-fit": "ADL + denoise + injected noise (fit)",
            "adl-denoise-pool": "ADL + denoise + injected noise (pool)"}
RES = "x2/k3"


def rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def sigma(images) -> np.ndarray:
    """Mean per-channel noise level (8-bit levels) of uint8 HxWx3 images."""
    return np.mean([estimate_sigma(image.astype(np.float64), channel_axis=-1) for image in images], axis=0)


def fmt(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def down_run(work: Path, dataset: str, denoise: str) -> Path:
    """The ADL downsampler run folder trained on the noisy LR (denoise none) or the denoised LR."""
    for folder in sorted((work / "results" / dataset / RES).glob("down-adl-*")):
        lr = json.loads((folder / "config.json").read_text())["options"]["lr"]
        if ("lr_denoised" in lr) == (denoise != "none"):
            return folder
    raise SystemExit(f"noise_tables: no ADL run with denoise={denoise} under {work / 'results' / dataset}")


def downsampler_table(work: Path, settings: dict[str, tuple[str, str]]) -> None:
    print("| noise | G trained on | LR PSNR vs clean test LR (dB) | kernel similarity |\n|---|---|---|---|")
    for dataset, (law, photos) in settings.items():
        for variant, denoise in (("adl-n", "none"), ("adl-denoise", "bm3d")):
            table = rows(work / "results/noise" / dataset / variant / "table1.csv")
            value = next(r["k3"] for r in table if r["method"] == "adl")
            log = rows(down_run(work, dataset, denoise) / "log.csv")
            similarity = [r["val_kernel_similarity"] for r in log if r["val_kernel_similarity"]][-1]
            print(f"| {law}, {photos} | {VARIANTS[variant]} | {value} | {float(similarity):.3f} |")


def test_idown(work: Path, dataset: str, down: Path, inject: str) -> list[np.ndarray]:
    """G(test HR) with the injected noise, whole images (adl generate --full-images), made once per mode:
    the same content as the true noisy test LR, so that the estimator sees the same images."""
    res = work / "resources" / dataset / RES
    out = work / "results/noise" / dataset / f"test-idown-{inject}"
    if not (out / "manifest.json").is_file():
        noise = [] if inject == "none" else ["--noise", str(res / "noise-bm3d.npz"), "--noise-mode", inject]
        subprocess.run(["adl", "-q", "generate", "--model", str(down / "G.onnx"), "--hr",
                        str(work / "resources" / dataset / "split/test_hr"), "--output", str(out), "--full-images",
                        "--format", "png", "--workers", "1", *noise], check=True, stdout=subprocess.DEVNULL)
    return [read_image(p) for p in list_images(out / "lr")]


def noise_table(work: Path, settings: dict[str, tuple[str, str]]) -> None:
    print("| noise | images | estimated σ (R, G, B) | fitted a (R, G, B) | fitted b (R, G, B) |\n|---|---|---|---|---|")
    for dataset, (spec, photos) in settings.items():
        law = NoiseLaw.parse(spec)
        spec = f"{spec}, {photos}"
        res = work / "resources" / dataset / RES
        clean = [read_image(p) for p in list_images(res / "test_hr_lr")]
        truth = np.mean([law.sigma(c.astype(np.float64)) for c in clean])
        print(f"| {spec} | the law on the clean test LR (truth) | {truth:.2f} (each) | {law.a:g} | {law.b:g} |")
        print(f"| {spec} | true noisy test LR | {fmt(sigma(read_image(p) for p in list_images(res / 'test_hr_lr_noisy')))} | | |")
        print(f"| {spec} | clean test LR (the estimator's floor) | {fmt(sigma(clean))} | | |")
        model = load_noise_model(res / "noise-bm3d.npz")
        down = down_run(work, dataset, "bm3d")
        for inject in ("none", "fit", "pool"):
            fitted = (fmt(model.a), fmt(model.b)) if inject == "fit" else ("", "")
            print(f"| {spec} | G(test HR), inject {inject} | {fmt(sigma(test_idown(work, dataset, down, inject)))} "
                  f"| {fitted[0]} | {fitted[1]} |")


def sr_table(work: Path, settings: dict[str, tuple[str, str]]) -> None:
    print("| noise | SR trained on | PSNR (dB) on the noisy test LR |\n|---|---|---|")
    for dataset, (law, photos) in settings.items():
        for variant, name in VARIANTS.items():
            path = work / "results/noise" / dataset / variant / "table3.csv"
            for r in rows(path):
                label = name if r["method"] == "adl" else {"bicubic": "bicubic pairs",
                                                           "oracle": "oracle (true kernel + true noise)"}[r["method"]]
                print(f"| {law}, {photos} | {label} | {r['k3']} |")


def settings(work: Path) -> dict[str, tuple[str, str]]:
    """Each dataset the protocol ran: the law its noisy test LR was degraded with (from its log), and its
    photo set (scripts/noise_protocol.sh names the varied one's dataset after it)."""
    found = {}
    for folder in sorted((work / "results/noise").iterdir()):
        log = work / "logs" / folder.name / "degrade" / "x2-k3-test_hr-noisy.log"
        if folder.is_dir() and log.is_file():
            law = re.search(r"with (\S+) noise", log.read_text()).group(1)
            found[folder.name] = (law, "varied" if "varied" in folder.name else "skimage")
    return found


def main(work: Path) -> None:
    ran = settings(work)
    for title, table in (("Downsampler", downsampler_table), ("Noise", noise_table), ("SR (EDSR, small)", sr_table)):
        print(f"\n### {title}\n")
        table(work, ran)
    print("\n### Wall time (scripts/noise_protocol.sh)\n\n```")
    print((work / "results/noise/times.txt").read_text().rstrip())
    print("```")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
