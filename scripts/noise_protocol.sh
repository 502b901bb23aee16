#!/bin/bash
# The noisy CPU protocol of docs/noise.md: config/cpu-noisy.yaml under two noise laws (and a second photo
# set) and four ways to treat the noisy LR set (ADL-n; ADL on BM3D-denoised LR; + injected noise, fit; + pool). Each run's
# tables are kept under WORKDIR/results/noise/<dataset>/<variant>/; scripts/noise_tables.py reads them.
#   scripts/noise_protocol.sh WORKDIR [CORES]       (about one sitting on 2 cores; resumable: rerun it)
set -u
work=$(realpath -m "$1"); cores=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/results/noise"
run() {  # dataset law photos variant denoise inject methods
  local start=$(date +%s) keep="$work/results/noise/$1/$4"
  mkdir -p "$keep"
  if ! (cd "$work" && snakemake results/table1.csv results/table3.csv -s "$here/Snakefile" -d "$work" \
      --cores "$cores" --configfile "$here/config/cpu-noisy.yaml" --config "dataset=$1" \
      "protocol={noise: '$2'${3:+, photos: $3}}" "lr={denoise: $5, inject: $6}" "sr={methods: [$7]}" \
      > "$keep/snakemake.log" 2>&1); then
    echo "noise_protocol: $1 $4 failed; see $keep/snakemake.log" >&2; exit 1
  fi
  cp "$work/results/table1.csv" "$work/results/table3.csv" "$keep/"
  echo "$1 $4: $(( $(date +%s) - start )) s" | tee -a "$work/results/noise/times.txt"
}
# dataset, noise law, photo set (-: the config's): two laws on scikit-image's photos, the Gaussian law on varied.
for setting in "cpu-noisy gaussian:5 -" "cpu-noisy-pg poisson-gaussian:0.25,4 -" "cpu-noisy-varied gaussian:5 varied"; do
  set -- $setting
  [ "$3" = - ] && set -- "$1" "$2" ""  # config/cpu-noisy.yaml's own photos (skimage)
  run "$1" "$2" "$3" adl-n none none "bicubic, oracle, adl"
  run "$1" "$2" "$3" adl-denoise bm3d none adl
  run "$1" "$2" "$3" adl-denoise-fit bm3d fit adl
  run "$1" "$2" "$3" adl-denoise-pool bm3d pool adl
done
