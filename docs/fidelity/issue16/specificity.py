"""The kernel-specific part of each ADL G's score, from cross.csv: its LR PSNR against the truth of the
kernel it was trained on, minus the best score against that truth of any ADL G (any seed) trained on
another kernel of the same set. Positive: G learned something of its own kernel beyond what every G learns.
  python docs/fidelity/issue16/specificity.py > docs/fidelity/issue16/specificity.csv"""

import csv
from pathlib import Path

rows = list(csv.DictReader(open(Path(__file__).parent / "cross.csv")))
adl = [r for r in rows if r["term"] in ("adl", "adl-s1", "adl-s2")]
print("set,kernel,seed,own,best_other,best_other_trained_on,specificity")
for r in adl:
    if r["trained_on"] != r["scored_against"]:
        continue
    others = [o for o in adl if o["set"] == r["set"] and o["scored_against"] == r["trained_on"]
              and o["trained_on"] != r["trained_on"]]
    best = max(others, key=lambda o: float(o["lr_psnr"]))
    seed = {"adl": 0, "adl-s1": 1, "adl-s2": 2}[r["term"]]
    own, other = float(r["lr_psnr"]), float(best["lr_psnr"])
    print(f"{r['set']},{r['trained_on']},{seed},{own:.2f},{other:.2f},{best['trained_on']},{own - other:+.2f}")
