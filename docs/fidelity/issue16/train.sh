#!/bin/bash
# One CPU run of config/cpu.yaml's downsampler settings on a sample-protocol folder (issue 16).
#   docs/fidelity/issue16/train.sh DATA KERNEL TERM NAME SEED [extra adl options...]
# DATA holds hr/ lr/ test_hr/ test_lr/ (adl sample-data --photos SET --tile 128 --kernel KERNEL).
# The run folder goes to /tmp/adl16/runs/NAME; its log.csv and config.json are copied here.
set -e
data=$1 kernel=$2 term=$3 name=$4 seed=$5; shift 5
out=/tmp/adl16/runs/$name
here=$(dirname "$0")/runs/$name
mkdir -p "$here"
OMP_NUM_THREADS=1 nice -n 5 adl -q train-downsampler --hr "$data/hr" --lr "$data/lr" --output "$out" \
  --data-loss "$term" --iterations 600 --epoch-length 250 --warmup 300 --update-every 100 --batch-size 8 \
  --lr-patch 32 --width 16 --disc-width 32 --disc-norm none --lr-rate 0.0002 --retrieval-images 20 \
  --checkpoint-every 100 --log-every 50 --val-every 150 --seed "$seed" --device cpu \
  --val-hr "$data/test_hr" --val-lr "$data/test_lr" --true-kernel "$kernel" "$@"
cp "$out/log.csv" "$out/config.json" "$here/"
