"""The Snakemake workflow: DAG shape on the paper's protocol, caching, reruns and config checks.

Dry runs (-n) are cheap; one small real run (×2, k0, EDSR, tiny schedules) checks caching.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Targets go first: --configfile and --config take every word that follows them."""
    # The rules call `adl`: make this interpreter's console scripts findable even without an activated venv.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                            timeout=900, env=env)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'job count' table of a dry run."""
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


@pytest.fixture()
def workflow_copy(tmp_path) -> Path:
    """The workflow in a folder of its own, so that runs leave the repository alone."""
    for name in ("Snakefile", "workflow", "config"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


@pytest.fixture(scope="module")
def fake_div2k(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("DIV2K")
    tiny = np.zeros((8, 8, 3), np.uint8)
    for folder, numbers in (("DIV2K_train_HR", range(1, 801)), ("DIV2K_valid_HR", range(801, 901))):
        (root / folder).mkdir()
        for n in numbers:
            Image.fromarray(tiny).save(root / folder / f"{n:04d}.png")
    return root


def test_the_paper_protocol_schedules_every_job_of_tables_1_and_3(workflow_copy, fake_div2k):
    out = snakemake(workflow_copy, "-n", "--configfile", "config/div2k.yaml",
                    "--config", f"protocol={{kind: div2k, root: {fake_div2k}}}").stdout
    counts = job_counts(out)
    kernels, scales, losses, methods = 5, 2, 4, 4
    assert counts["train_downsampler"] == kernels * scales * losses  # LFL, ADL and the fixed-term baselines
    assert counts["lr_psnr"] == counts["retrieve_kernel"] == kernels * scales * losses
    assert counts["export_onnx"] == counts["generate_shards"] == kernels * scales * 2  # LFL and ADL feed SR
    assert counts["train_sr"] == counts["evaluate_sr"] == kernels * scales * methods
    assert counts["degrade"] == kernels * scales * 2  # the LR set and the true test LR
    assert counts["split"] == 1 and counts["true_kernels"] == scales
    assert counts["table1"] == counts["table3"] == counts["kernels_table"] == 1


def test_a_missing_dataset_file_is_named_before_any_job_runs(workflow_copy, fake_div2k, tmp_path):
    broken = tmp_path / "DIV2K"
    shutil.copytree(fake_div2k, broken)
    (broken / "DIV2K_train_HR" / "0005.png").unlink()
    result = snakemake(workflow_copy, "-n", "--configfile", "config/div2k.yaml",
                       "--config", f"protocol={{kind: div2k, root: {broken}}}", check=False)
    assert result.returncode != 0
    assert "DIV2K_train_HR/0005.png" in result.stdout + result.stderr


@pytest.mark.parametrize("override, key", [("scales=[3]", "scales"), ("device=tpu", "device"),
                                           ("bogus=1", "bogus"), ("protocol={noise: 'gauss:5'}", "noise"),
                                           ("protocol={kind: folders, hr: a, lr: a, test_hr: a, test_lr: a, "
                                            "noise: 'gaussian:5'}", "noise")])
def test_a_config_that_violates_the_schema_is_refused_naming_the_key(workflow_copy, override, key):
    result = snakemake(workflow_copy, "-n", "--config", override, check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "ValidationError" in text or "validation" in text.lower()
    assert key in text


def planned_commands(workflow_copy, *config) -> list[str]:
    out = snakemake(workflow_copy, "results/table1.csv", "results/table3.csv", "-n", "-p",
                    "--configfile", "config/cpu-noisy.yaml", "--config", *config).stdout
    return [" ".join(line.split()[2:]) for line in out.splitlines() if line.startswith("Shell command: ")]


def test_the_noisy_protocol_puts_noise_where_the_truth_has_it(workflow_copy):
    """config/cpu-noisy.yaml: noisy LR side, test LR for SR and oracle LR, each with its own seed; G trains on
    the denoised set and is scored against the clean test LR; generation injects the fitted noise."""
    cpu, noisy = (yaml.safe_load((REPO / "config" / name).read_text()) for name in ("cpu.yaml", "cpu-noisy.yaml"))
    for section in ("downsampler", "sr"):  # the noisy protocol is config/cpu.yaml's, plus noise
        assert noisy[section]["options"] == cpu[section]["options"], section
    assert noisy["generate"] == cpu["generate"] and noisy["protocol"] == {**cpu["protocol"], "noise": "gaussian:5"}
    commands = planned_commands(workflow_copy, "lr={denoise: bm3d, inject: fit}")
    res = "resources/cpu-noisy/x2/k3"

    def one(*words):
        found = [c for c in commands if all(w in c for w in words)]
        assert len(found) == 1, (words, commands)
        return found[0]

    for source, seed in (("lr_source", 1), ("test_hr", 2), ("hr", 3)):
        one(f"--output {res}/{source}_lr_noisy ", "--kernel k3 --noise gaussian:5", f"--seed {seed} ")
    one("adl -q denoise", f"--input {res}/lr_source_lr_noisy ", "--method bm3d")
    one("train-downsampler", f"--lr {res}/lr_denoised-bm3d ", f"--val-lr {res}/test_hr_lr ")
    one("adl -q psnr", f"--target {res}/test_hr_lr ")
    one("noise-model", f"--noisy {res}/lr_source_lr_noisy ", f"--clean {res}/lr_denoised-bm3d ", "--patch 16 ")
    one("adl -q generate", f"--noise {res}/noise-bm3d.npz --noise-mode fit")
    one("train-sr", f"--lr-source pairs:{res}/hr_lr_noisy ")
    assert sum(f"--lr {res}/test_hr_lr_noisy " in c for c in commands if "evaluate-sr" in c) == 3
    # Each noisy-LR variant trains its own SR network: their folders must not collide.
    adl_sr = [c.split("--output ")[1].split()[0] for c in commands if "train-sr" in c and "shards:" in c]
    pool = planned_commands(workflow_copy, "lr={denoise: bm3d, inject: pool}")
    assert adl_sr and adl_sr != [c.split("--output ")[1].split()[0] for c in pool if "train-sr" in c and "shards:" in c]


def test_lint_and_format_are_clean():
    lint = subprocess.run([*SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr, lint.stdout[-3000:]
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


# The smallest whole run, the catalog's .test configuration: what CI runs for real.
TINY = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())


def test_a_second_run_does_nothing_and_an_sr_option_reruns_only_sr_and_tables(workflow_copy):
    config = workflow_copy / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    snakemake(workflow_copy, "results/table3.csv", "--configfile", str(config))
    table = (workflow_copy / "results" / "table3.csv").read_text().splitlines()
    assert table[0] == "scale,model,method,k0" and len(table) == 3

    again = snakemake(workflow_copy, "results/table3.csv", "-n", "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr

    changed = dict(TINY, sr=dict(TINY["sr"], options=dict(TINY["sr"]["options"], iterations=6)))
    config.write_text(yaml.safe_dump(changed))
    plan = snakemake(workflow_copy, "results/table3.csv", "-n", "--configfile", str(config)).stdout
    assert set(job_counts(plan)) == {"train_sr", "evaluate_sr", "table3"}
