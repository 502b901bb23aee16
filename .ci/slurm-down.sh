#!/usr/bin/env bash
# Stops what .ci/slurm-up.sh started: the jobs still queued, then each daemon by the PID it recorded.
set -uo pipefail
dir=${ADL_SLURM_DIR:-/tmp/adl-slurm}
pids=$dir/pids
[[ -s $pids ]] || { echo "slurm-down: nothing to stop ($pids is missing)"; exit 0; }
# Jobs first, while slurmd is still there to end their steps.
squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null
for _ in $(seq 50); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2; done
# Reverse order of starting: slurmd, slurmctld, then munged which both need until they exit.
tac "$pids" | while read -r pid name; do
  [[ $(cat /proc/"$pid"/comm 2>/dev/null) == "$name" ]] || { echo "slurm-down: $name ($pid) already gone"; continue; }
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { echo "slurm-down: $pid ignored SIGTERM; sending SIGKILL" >&2; kill -9 "$pid"; }
done
rm -f "$pids"
echo "slurm-down: stopped"
