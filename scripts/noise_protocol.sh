#!/bin/bash
# The noisy CPU protocol of docs/noise.md: config/cpu-noisy.yaml under two noise laws and four ways to
# treat the noisy LR set (ADL-n; ADL on BM3D-denoised LR; + injected noise, fit; + pool). Each run's
# tables are kept under WORKDIR/results/noise/<dataset>/<variant>/; scripts/noise_tables.py reads them.
#   scripts/noise_protocol.sh WORKDIR [CORES]       (about one sitting on 2 cores; resumable: rerun it)
set -u
work=$(realpath -m "$1"); cores=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/results/noise"
run() {  # dataset law variant denoise inject methods
  local start=$(date +%s) keep="$work/results/noise/$1/$3"
  mkdir -p "$keep"
  if ! (cd "$work" && snakemake results/table1.csv results/table3.csv -s "$here/Snakefile" -d "$work" \
      --cores "$cores" --configfile "$here/config/cpu-noisy.yaml" --config "dataset=$1" \
      "protocol={noise: '$2'}" "lr={denoise: $4, inject: $5}" "sr={methods: [$6]}" > "$keep/snakemake.log" 2>&1); then
    echo "noise_protocol: $1 $3 failed; see $keep/snakemake.log" >&2; exit 1
  fi
  cp "$work/results/table1.csv" "$work/results/table3.csv" "$keep/"
  echo "$1 $3: $(( $(date +%s) - start )) s" | tee -a "$work/results/noise/times.txt"
}
for setting in "cpu-noisy gaussian:5" "cpu-noisy-pg poisson-gaussian:0.25,4"; do
  set -- $setting
  run "$1" "$2" adl-n none none "bicubic, oracle, adl"
  run "$1" "$2" adl-denoise bm3d none adl
  run "$1" "$2" adl-denoise-fit bm3d fit adl
  run "$1" "$2" adl-denoise-pool bm3d pool adl
done
