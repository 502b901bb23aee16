"""Table of issue 16's runs from their log.csv: validation (LR PSNR shave 8 / kernel similarity) at
every validated iteration, and D's loss over the last 100 iterations.
  python docs/fidelity/issue16/summarise.py > docs/fidelity/issue16/runs.md"""

import csv
from pathlib import Path

print("| run | LR PSNR (dB) / similarity at 150, 300, 450, 600 | D loss (it 500–600) |\n|---|---|---|")
for log in sorted(Path(__file__).parent.glob("runs/*/log.csv")):
    if log.parent.name.endswith("-long"):
        continue  # the long-budget curves have a table of their own, below
    rows = list(csv.DictReader(open(log)))
    val = [f"{float(r['val_lr_psnr']):.2f} / {float(r['val_kernel_similarity']):.3f}" for r in rows if r["val_lr_psnr"]]
    tail = [float(r["loss_d"]) for r in rows if 500 < int(r["iteration"]) <= 600]
    d = f"{sum(tail) / len(tail):.3f}" if tail else ""
    print(f"| {log.parent.name} | {'; '.join(val)} | {d} |")

# Table 1 per photo set and kernel: each run's value at iteration 600 beside the fixed kernels.
finals, base = {}, {}
for log in sorted(Path(__file__).parent.glob("runs/*/log.csv")):
    rows = [r for r in csv.DictReader(open(log)) if r["val_lr_psnr"]]
    if rows and rows[-1]["iteration"] == "600":
        photos, kernel, variant = log.parent.name.split("-", 2)
        finals.setdefault((photos, kernel), []).append(
            (variant, f"{float(rows[-1]['val_lr_psnr']):.2f} / {float(rows[-1]['val_kernel_similarity']):.3f}"))
for r in csv.DictReader(open(Path(__file__).parent / "baselines.csv")):
    base.setdefault((r["set"], r["kernel"]), []).append(
        (f"fixed {r['fixed']}", f"{float(r['lr_psnr']):.2f} / {float(r['kernel_similarity']):.3f}"))
for key in sorted(finals):
    print(f"\n**{key[0]}, {key[1]}, x2** (LR PSNR dB / kernel similarity at 600)\n\n| G | value |\n|---|---|")
    for name, value in finals[key] + base.get(key, []):
        print(f"| {name} | {value} |")

# The long-budget curves (10x config/cpu.yaml's iterations): validation every 250 iterations, D's loss
# over the 250 iterations before it, every second row printed.
for log in sorted(Path(__file__).parent.glob("runs/*-long/log.csv")):
    rows = list(csv.DictReader(open(log)))
    print(f"\n**{log.parent.name}** (validation every 250 iterations; D loss: mean of the 250 before)\n")
    print("| iteration | LR PSNR (dB) | similarity | D loss |\n|---|---|---|---|")
    for r in rows:
        it = int(r["iteration"])
        if r["val_lr_psnr"] and it % 500 == 0:
            window = [float(x["loss_d"]) for x in rows if it - 250 < int(x["iteration"]) <= it]
            print(f"| {it} | {float(r['val_lr_psnr']):.2f} | {float(r['val_kernel_similarity']):.3f} | "
                  f"{sum(window) / len(window):.3f} |")
