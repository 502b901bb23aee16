"""The SLURM profile against a real SLURM: a one-node cluster on localhost, started by .ci/slurm-up.sh.

The run goes through the user's profile (workflow/profiles/slurm) unchanged; only what a laptop-sized,
GPU-less, accounting-less cluster needs is overridden on the command line (LOCAL_CLUSTER below).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import SNAKEMAKE, TINY, job_counts, workflow_copy  # noqa: F401  (workflow_copy is a fixture)

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(shutil.which("sinfo") is None,
                       reason="no SLURM here: `sinfo` is not on PATH (CI starts a local cluster with .ci/slurm-up.sh)"),
]

# What the local test cluster needs instead of the profile's real-cluster settings.
LOCAL_CLUSTER = [
    # Its one partition; no accounting, so any account is accepted and "none" names none.
    # A few GB: the profile's 8-32 GB per job would never be scheduled.
    "--default-resources", "slurm_partition=debug", "slurm_account=none", "runtime=10", "mem_mb=500",
    # 2 CPUs: the profile's 4-8 threads per job would never be scheduled. This replaces the
    # profile's whole set-threads block, so every rule has its own default, one thread.
    "--set-threads", "train_downsampler=1",
    # No GPU on the node: the rules' gpu=1 becomes `sbatch --gpus=1`, which SLURM refuses. This
    # replaces the profile's whole set-resources block, cpus_per_gpu and mem_mb included.
    "--set-resources", "train_downsampler:gpu=0", "generate_shards:gpu=0", "train_sr:gpu=0",
    "evaluate_sr:gpu=0",
    # No slurmdbd, so sacct cannot answer; squeue can, for MinJobAge (300 s) after a job ends.
    "--slurm-status-command", "squeue",
    # The plugin waits 40 s before its first status check by default; 2 s keeps the test short, and
    # MinJobAge >= 3 x this wait keeps the plugin from falling back to sacct.
    "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
    # Keep the job logs, so that the test can see the jobs ran in SLURM.
    "--slurm-keep-successful-logs",
]


def cluster_problem() -> str | None:
    """None when the local cluster's node is up; otherwise what is wrong, with what CI needs to see why:
    which of .ci/slurm-up.sh's daemons are still alive, and the end of their logs."""
    # A node that missed a heartbeat on a loaded 2-core machine is back within a minute (ReturnToService=2).
    for _ in range(30):
        node = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=60)
        if node.returncode == 0 and node.stdout.split() in (["idle"], ["mix"], ["alloc"]):
            return None
        time.sleep(2)
    folder = Path(os.environ.get("ADL_SLURM_DIR", "/tmp/adl-slurm"))
    lines = [f"SLURM is installed but its node is not up (start a cluster with .ci/slurm-up.sh): "
             f"sinfo says {(node.stdout + node.stderr).strip()!r}"]
    pids = folder / "pids"
    for line in pids.read_text().splitlines() if pids.exists() else []:
        pid, name = line.split()
        alive = Path(f"/proc/{pid}/comm").exists()
        lines.append(f"  {name} ({pid}): {'alive' if alive else 'gone'}")
    for log in sorted((folder / "log").glob("*.log")):
        lines += [f"--- {log}", *log.read_text(errors="replace").splitlines()[-15:]]
    return "\n".join(lines)


def test_the_slurm_profile_runs_a_tiny_target_through_slurm(workflow_copy):  # noqa: F811
    problem = cluster_problem()
    assert problem is None, problem
    config = workflow_copy / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    # Jobs inherit this environment (sbatch --export=ALL): they must find `adl` of this interpreter.
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    # split, degrade and one trained downsampler per data term (LFL, ADL): 4 SLURM jobs in 3 waves,
    # each costing a few seconds of status polling.
    result = subprocess.run(
        [*SNAKEMAKE, "--profile", "workflow/profiles/slurm", *LOCAL_CLUSTER, "--verbose",
         "--configfile", str(config), "--until", "train_downsampler"],
        cwd=workflow_copy, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]

    # Every job was submitted with sbatch and finished as a SLURM job.
    planned = job_counts(log)
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(job_ids) == sum(planned.values()) and planned["train_downsampler"] >= 1, log[-6000:]
    summaries = list(workflow_copy.glob("results/tiny/x2/k0/down-*/summary.json"))
    assert len(summaries) == planned["train_downsampler"]
    slurm_logs = list((workflow_copy / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in slurm_logs) == sorted(job_ids)
    for job_id in job_ids:
        state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        assert "JobState=COMPLETED" in state, state

    # Status came from squeue, never from the accounting database this cluster does not have.
    assert "command=squeue" in log
    assert "command=sacct" not in log and "Falling back to 'sacct'" not in log
    assert "--gpus" not in log
    # The CPUs asked for are the jobs' threads (no cpus_per_task resource overrides them).
    calls = re.findall(r"sbatch call: (.*)", log)
    assert calls and all("--cpus-per-task=1" in call for call in calls), calls
