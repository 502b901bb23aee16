#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, so that tests/test_slurm.py runs the workflow through the real
# SLURM executor instead of a mock. Needs root (Debian/Ubuntu). Undo with .ci/slurm-down.sh.
# State, logs and the PID file live in $ADL_SLURM_DIR (default /tmp/adl-slurm).
set -euo pipefail
dir=${ADL_SLURM_DIR:-/tmp/adl-slurm}
pids=$dir/pids
if [[ -s $pids ]]; then echo "slurm-up: already up (see $pids); run .ci/slurm-down.sh first" >&2; exit 1; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
    || ! command -v munged >/dev/null; then
  # Stop the packages' init scripts from starting daemons we would not own (we start our own, by PID).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  pkgs=(slurmctld slurmd slurm-client munge)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi

mkdir -p "$dir"/{state,spool,log}
# 90% of the memory: a node whose RealMemory exceeds what slurmd finds is drained.
mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
# /etc/slurm/slurm.conf and no SLURM_CONF: the executor plugin's job step strips SLURM_CONF from the
# environment, so any other path is lost inside the job.
mkdir -p /etc/slurm
cat >/etc/slurm/slurm.conf <<EOF
ClusterName=adlci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# No cgroups in containers: track processes by parent PID, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd, so no sacct: the plugin must use squeue, and it only trusts squeue when finished
# jobs stay visible for at least 3x its initial status wait (40 s by default).
AccountingStorageType=accounting_storage/none
MinJobAge=300
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# The package makes a key on install; make one if it did not (munge refuses to run without).
if [[ ! -s /etc/munge/munge.key ]]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
fi
# No systemd here to create the socket folder.
install -d -o munge -g munge -m 755 /run/munge

# Foreground daemons, each exec'd by setsid so that $! is the daemon itself and it outlives this script.
# Each line of $pids is "PID NAME"; slurm-down checks the name so that a reused PID is left alone.
start() { local name=$1; shift; setsid "$@" </dev/null >>"$dir/log/stdout.log" 2>&1 & echo "$! $name" >>"$pids"; }
start munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
for _ in $(seq 50); do [[ -S /run/munge/munge.socket.2 ]] && break; sleep 0.1; done
start slurmctld slurmctld -D
start slurmd slurmd -D -N localhost  # the node is "localhost" whatever the host's name is

for _ in $(seq 60); do
  if [[ $(sinfo -h -N -o %t 2>/dev/null) == idle ]]; then sinfo; exit 0; fi
  sleep 0.5
done
echo "slurm-up: the node did not become idle; logs in $dir/log" >&2
sinfo -N -l >&2 || true
tail -n 20 "$dir"/log/*.log >&2 || true
exit 1
