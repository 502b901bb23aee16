#!/bin/bash
# D alone against frozen G (box, k3), trained with --patch-sampling $2, held-out accuracy per patch against texture.
#   docs/fidelity/issue16/dcheck.sh DATA SAMPLING NAME
here=$(dirname "$0")
OMP_NUM_THREADS=1 nice -n 5 python scripts/discriminator_check.py --hr "$1/hr" --lr "$1/lr" --fixed box --fixed k3 \
  --iterations 600 --every 100 --disc-norm none --disc-width 32 --batch-size 8 --lr-patch 32 --lr-rate 2e-4 \
  --patch-sampling "$2" "${@:4}" --per-patch "$here/dcheck-$3.csv" --held-out 512 > "$here/dcheck-$3.txt" 2>&1
