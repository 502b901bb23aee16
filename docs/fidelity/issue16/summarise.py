"""Table of issue 16's runs from their log.csv: validation (LR PSNR shave 8 / kernel similarity) at
every validated iteration, and D's loss over the last 100 iterations.
  python docs/fidelity/issue16/summarise.py > docs/fidelity/issue16/runs.md"""

import csv
from pathlib import Path

print("| run | LR PSNR (dB) / similarity at 150, 300, 450, 600 | D loss (it 500–600) |\n|---|---|---|")
for log in sorted(Path(__file__).parent.glob("runs/*/log.csv")):
    rows = list(csv.DictReader(open(log)))
    val = [f"{float(r['val_lr_psnr']):.2f} / {float(r['val_kernel_similarity']):.3f}" for r in rows if r["val_lr_psnr"]]
    tail = [float(r["loss_d"]) for r in rows if 500 < int(r["iteration"]) <= 600]
    d = f"{sum(tail) / len(tail):.3f}" if tail else ""
    print(f"| {log.parent.name} | {'; '.join(val)} | {d} |")
