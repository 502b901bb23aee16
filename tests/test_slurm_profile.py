"""The sbatch arguments the installed SLURM executor plugin builds from workflow/profiles/slurm.

No cluster is needed: `sbatch` and the query commands are replaced by scripts on PATH, and the fake
`sbatch` records the arguments the plugin gives it, then refuses the job. The profile is used as it
ships. tests/test_slurm.py runs the same profile on a real one-node SLURM.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess

import pytest
import yaml
from test_workflow import REPO, SNAKEMAKE, TINY, workflow_copy  # noqa: F401  (workflow_copy is a fixture)

pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin needs Python >= 3.11")

PROFILE = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
FAKES = {
    # One line per call: the arguments, shell-quoted.
    # One write per call: the plugin submits jobs concurrently, and two appends per call interleaved.
    "sbatch": 'line=$(printf "%q " "$@"); printf "%s\\n" "$line" >> "$ADL_SBATCH_LOG"; '
              'echo "sbatch: error: this is a test double" >&2; exit 1',
    # The account check accepts the profile's account; nothing else needs an answer.
    "sacctmgr": 'echo "<your-account>"',
    "sshare": 'echo "<your-account>"',
    "sinfo": "exit 0", "squeue": "exit 0", "sacct": "exit 0", "scontrol": "exit 0",
}
# Two kernels: k0's data can be made ready while a degrade job of k1 is still to run.
CONFIG = dict(TINY, kernels=["k0", "k1"], generate=dict(TINY["generate"], backend="torch"))


def fake_slurm(folder):
    folder.mkdir()
    for name, body in FAKES.items():
        path = folder / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def outputs_of(dry_run: str) -> dict[str, list[str]]:
    """rule -> the output paths of its planned jobs, from a dry run's job listing."""
    found: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", dry_run):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        output = re.search(r"^\s+output: (.+)$", block, re.M)
        if rule and output:
            found.setdefault(rule.group(1), []).extend(output.group(1).split(", "))
    return found


def touch(path, directory=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        path.mkdir(exist_ok=True)
    else:
        path.write_text("x\n")


def test_the_plugin_asks_for_the_profiles_cpus_gpus_and_partitions(workflow_copy, tmp_path):  # noqa: F811
    config = workflow_copy / "tiny.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = dict(os.environ, PATH=f"{fake_slurm(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
               ADL_SBATCH_LOG=str(tmp_path / "sbatch.log"))
    base = [*SNAKEMAKE, "--profile", "workflow/profiles/slurm", "--configfile", str(config)]

    # A dry run caps threads at --cores, as the job step on a node caps them at the CPUs SLURM granted.
    plan = subprocess.run([*base, "-n", "-p", "--cores", "64", "all"], cwd=workflow_copy, env=env,
                          capture_output=True, text=True, timeout=900)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    # The threads the plugin asks for are the threads the commands use.
    threads = PROFILE["set-threads"]
    assert f"OMP_NUM_THREADS={threads['generate_shards']} adl -q generate" in plan.stdout
    assert f"--workers {threads['generate_shards']} " in plan.stdout
    assert f"OMP_NUM_THREADS={threads['train_downsampler']} adl -q train-downsampler" in plan.stdout

    # A state where one train, one generate and one degrade job are ready at once: the split, k0's LR
    # and test LR sets (a downsampler validates on the test set) and its ADL run exist; k0's LFL run,
    # its ADL shards and k1's degraded sets do not.
    outputs = outputs_of(plan.stdout)
    down = {re.search(r"down-(\w+)-", p).group(1): p for p in outputs["train_downsampler"] if "/k0/" in p}
    for path in outputs["split"]:
        touch(workflow_copy / path)
    for path in outputs["degrade"]:
        if "/k0/" in path:
            touch(workflow_copy / path, directory=True)
    test_lr = next(p for p in outputs["degrade"] if "/k1/" in p and p.endswith("test_hr_lr"))
    touch(workflow_copy / down["adl"])
    shards = next(p for p in outputs["generate_shards"] if "/down-adl-" in p and "/k0/" in p)
    targets = [down["lfl"], shards, test_lr]
    result = subprocess.run([*base, "--keep-going", *targets], cwd=workflow_copy, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode != 0  # the test double refuses every job
    calls = [shlex.split(line) for line in (tmp_path / "sbatch.log").read_text().splitlines()]
    by_rule = {}
    for words in calls:
        comment = words[words.index("--comment") + 1]
        by_rule[re.match(r"rule_(\w+?)(?:_wildcards|$)", comment).group(1)] = words
    assert set(by_rule) == {"train_downsampler", "generate_shards", "degrade"}, calls

    def flag(words, name):
        return next(w.split("=", 1)[1] if "=" in w else words[i + 1]
                    for i, w in enumerate(words) if w == name or w.startswith(name + "="))

    resources = PROFILE["set-resources"]
    defaults = PROFILE["default-resources"]
    for rule in ("train_downsampler", "generate_shards"):
        words = by_rule[rule]
        assert flag(words, "--cpus-per-task") == str(threads[rule])
        assert flag(words, "--gpus") == "1"
        assert flag(words, "-p") == resources[rule]["slurm_partition"] == "<your-gpu-partition>"
        assert flag(words, "--mem") == str(resources[rule]["mem_mb"])
        assert flag(words, "-A") == defaults["slurm_account"]
        assert not any(w.startswith("--cpus-per-gpu") for w in words)
    assert flag(by_rule["train_downsampler"], "-t") == "240"  # the rule's runtime (minutes)
    assert flag(by_rule["generate_shards"], "-t") == "60"
    words = by_rule["degrade"]
    assert flag(words, "--cpus-per-task") == str(threads["degrade"])
    assert flag(words, "-p") == defaults["slurm_partition"] == "<your-cpu-partition>"
    assert flag(words, "--mem") == str(defaults["mem_mb"])
    assert not any(w.startswith("--gpus") for w in words)

    # The table job, once its inputs exist, runs on this host: no sbatch call, "localrule" in the log.
    touch(workflow_copy / down["lfl"])
    touch(workflow_copy / test_lr, directory=True)
    for path in outputs["lr_psnr"]:
        touch(workflow_copy / path, directory=path.endswith("test_lr"))
    table = subprocess.run([*base, "--keep-going", "results/table1.csv"], cwd=workflow_copy, env=env,
                           capture_output=True, text=True, timeout=900)
    log = table.stdout + table.stderr
    assert "localrule table1:" in log, log[-3000:]
    assert len((tmp_path / "sbatch.log").read_text().splitlines()) == len(calls)
