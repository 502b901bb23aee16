"""The workflow's generation fan-out (generate.parts): N part jobs and one merge job whose result is the
folder one job writes, byte for byte; run locally and, where SLURM answers, through the SLURM profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from test_workflow import SNAKEMAKE, TINY, job_counts, snakemake, workflow_copy  # noqa: F401  (a fixture)

# One data term feeding SR, so that the fan-out is the whole generation stage.
FANOUT = dict(TINY, downsampler=dict(TINY["downsampler"], losses=["lfl"]),
              sr=dict(TINY["sr"], methods=["bicubic", "lfl"]),
              generate={"patch": 32, "patches_per_image": 3, "shard_size": 2})
# The sample protocol's 3 HR images give 9 samples in 5 shards: parts of 1, 2 and 2 shards, some shards
# holding patches of two images.


def config_file(folder: Path, parts: int) -> Path:
    path = folder / f"parts{parts}.yaml"
    path.write_text(yaml.safe_dump(dict(FANOUT, generate=dict(FANOUT["generate"], parts=parts))))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_equals_one_job(root: Path) -> Path:
    """The merged folder verifies and holds exactly what one `adl generate` of the same inputs writes."""
    merged = [p.parent for p in root.glob("results/tiny/x2/k0/down-lfl-*/shards-*/manifest.json")]
    assert len(merged) == 1, merged
    merged = merged[0]
    parts = sorted(merged.parent.glob(f"{merged.name}.parts/*-of-3"))
    assert [p.name for p in parts] == ["1-of-3", "2-of-3", "3-of-3"]
    adl = [sys.executable, "-m", "adl", "-q"]
    verify = subprocess.run([*adl, "verify-shards", str(merged)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    single = root / "single"
    options = FANOUT["generate"]
    subprocess.run([*adl, "generate", "--model", str(merged.parent / "G.onnx"),
                    "--hr", str(root / "resources/tiny/split/hr"), "--output", str(single),
                    "--patch", str(options["patch"]), "--patches-per-image", str(options["patches_per_image"]),
                    "--shard-size", str(options["shard_size"]), "--device", "cpu"], check=True)
    names = sorted(p.name for p in merged.glob("shard-*.h5"))
    assert names == sorted(p.name for p in single.glob("shard-*.h5")) and len(names) == 5
    for name in names:
        assert sha256(merged / name) == sha256(single / name), name
        # Hard links into the part that wrote it: no payload was copied.
        assert any((p / name).exists() and (p / name).samefile(merged / name) for p in parts), name
    assert (json.loads((merged / "manifest.json").read_text())["shards"]
            == json.loads((single / "manifest.json").read_text())["shards"])
    return merged


def test_parts_fan_out_into_n_jobs_and_a_merge_with_the_same_folder_name(workflow_copy):  # noqa: F811
    plans = {n: snakemake(workflow_copy, "results/table3.csv", "-n", "--configfile",
                          str(config_file(workflow_copy, n))).stdout for n in (1, 3)}
    one, three = job_counts(plans[1]), job_counts(plans[3])
    assert one["generate_shards"] == 1 and "merge_shards" not in one
    assert three["generate_shards"] == 3 and three["merge_shards"] == 1
    assert {k: v for k, v in three.items() if k not in ("generate_shards", "merge_shards", "all")} == \
           {k: v for k, v in one.items() if k not in ("generate_shards", "all")}
    # The number of parts is not an option of the shards: both plans name the same shard folder and SR runs.
    folders = [sorted(set(re.findall(r"shards-[0-9a-f]{8}/manifest.json", plans[n]))) for n in (1, 3)]
    assert folders[0] == folders[1] and len(folders[0]) == 1
    assert sorted(set(re.findall(r"sr-edsr-lfl-[0-9a-f]{8}", plans[1]))) == \
           sorted(set(re.findall(r"sr-edsr-lfl-[0-9a-f]{8}", plans[3])))


def test_three_parts_merged_locally_equal_one_job(workflow_copy):  # noqa: F811
    snakemake(workflow_copy, "--until", "merge_shards", "--configfile", str(config_file(workflow_copy, 3)))
    check_equals_one_job(workflow_copy)


def slurm_time(text: str, key: str) -> datetime:
    return datetime.fromisoformat(re.search(rf"\b{key}=(\S+)", text).group(1))


@pytest.mark.slurm
@pytest.mark.skipif(shutil.which("sinfo") is None,
                    reason="no SLURM here: `sinfo` is not on PATH (CI starts a local cluster with .ci/slurm-up.sh)")
def test_three_parts_run_in_parallel_on_slurm_and_merge_to_one_job(workflow_copy):  # noqa: F811
    from test_slurm import LOCAL_CLUSTER, cluster_problem

    problem = cluster_problem()
    assert problem is None, problem
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [*SNAKEMAKE, "--profile", "workflow/profiles/slurm", *LOCAL_CLUSTER, "--verbose",
         "--configfile", str(config_file(workflow_copy, 3)), "--until", "merge_shards"],
        cwd=workflow_copy, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    check_equals_one_job(workflow_copy)

    # Every job ran in SLURM (those older than MinJobAge, 300 s, are no longer listed by scontrol).
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(job_ids) == sum(job_counts(log).values())
    jobs = {i: subprocess.run(["scontrol", "show", "job", i], capture_output=True, text=True).stdout for i in job_ids}
    by_rule = {rule: [t for t in jobs.values() if f"/slurm_logs/rule_{rule}/" in t]
               for rule in ("generate_shards", "merge_shards")}
    assert len(by_rule["generate_shards"]) == 3 and len(by_rule["merge_shards"]) == 1, jobs
    assert all("JobState=COMPLETED" in t for t in jobs.values() if t), jobs
    # The parts were handed to SLURM together, and ran side by side as far as the node's CPUs allow.
    parts = by_rule["generate_shards"]
    first_end = min(slurm_time(t, "EndTime") for t in parts)
    assert all(slurm_time(t, "SubmitTime") < first_end for t in parts), parts
    assert sum(slurm_time(t, "StartTime") < first_end for t in parts) >= 2, parts
    assert slurm_time(by_rule["merge_shards"][0], "StartTime") >= max(slurm_time(t, "EndTime") for t in parts)
    assert "--gpus" not in log
