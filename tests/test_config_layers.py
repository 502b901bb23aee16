"""The workflow's configuration layers: what a protocol config really runs.

Each test dry-runs the workflow (`snakemake -n -p`), takes the shell commands it planned, parses
each planned `adl train-downsampler`, `adl train-sr` and `adl generate` with adl's own parser, and
compares the options that reach the command with method.md §6-§7 and with the config file's bytes.
"""

from __future__ import annotations

import shlex
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image
from test_workflow import REPO, fake_div2k, job_counts, snakemake, workflow_copy  # noqa: F401  (fixtures)

from adl.cli import build_parser
from adl.downsampler.options import DownsamplerOptions
from adl.options import from_args
from adl.shards.options import GenerateOptions
from adl.sr.options import SROptions

# method.md §6 (downsampler) and §7 (EDSR reference), written out here as the truth to compare with.
EPOCH, EPOCHS = 1741, 80
PAPER_DOWNSAMPLER = {"epoch_length": EPOCH, "iterations": EPOCHS * EPOCH, "batch_size": 24, "lr_patch": 64,
                     "width": 64, "disc_width": 64, "lr_rate": 5e-5, "warmup": 10 * EPOCH,
                     "update_every": 10 * EPOCH}
PAPER_SR = {"iterations": 300_000, "batch_size": 16, "hr_patch": 192, "lr_rate": 1e-4, "decay_at": 200_000}
COMMANDS = {"train-downsampler": DownsamplerOptions, "train-sr": SROptions, "generate": GenerateOptions}


def planned(output: str) -> dict[str, list]:
    """The option dataclass of every planned train-downsampler, train-sr and generate command,
    parsed by adl's own command line from the dry run's printed shell commands."""
    found = {name: [] for name in COMMANDS}
    for line in output.splitlines():
        for name, cls in COMMANDS.items():
            marker = f"adl -q {name} "
            if marker in line:
                words = shlex.split(line[line.index(marker):].split(" > ")[0])
                args = build_parser().parse_args(words[1:])
                found[name].append((from_args(cls, args), args))
    return found


def check_paper_settings(plan: dict[str, list], generate: dict) -> None:
    for options, _ in plan["train-downsampler"]:
        resolved = options.resolved()
        for key, value in PAPER_DOWNSAMPLER.items():
            assert getattr(resolved, key) == value, (key, getattr(resolved, key), value)
        assert resolved.hr_patch == 64 * resolved.scale  # 128 at ×2 (method.md §6); G∘G at ×4 sees 256
    for options, _ in plan["train-sr"]:
        resolved = options.resolved()
        for key, value in PAPER_SR.items():
            assert getattr(resolved, key) == value, (key, getattr(resolved, key), value)
        assert (resolved.n_feats, resolved.n_blocks) == (64, 16)  # EDSR-baseline
    for options, _ in plan["generate"]:
        for key, value in generate.items():
            assert getattr(options, key) == value, (key, getattr(options, key), value)


@pytest.fixture(scope="module")
def fake_realsr(tmp_path_factory):
    root = tmp_path_factory.mktemp("RealSR")
    tiny = np.zeros((8, 8, 3), np.uint8)
    for folder, names in (("hr", ["a_HR", "b_HR"]), ("lr", ["c_LR2", "d_LR2"]), ("test_hr", ["t1", "t2"]),
                          ("test_lr", ["t1", "t2"])):
        (root / folder).mkdir()
        for name in names:
            Image.fromarray(tiny).save(root / folder / f"{name}.png")
    return root


def test_the_div2k_protocol_plans_the_papers_settings(workflow_copy, fake_div2k):  # noqa: F811
    out = snakemake(workflow_copy, "-n", "-p", "--configfile", "config/div2k.yaml",
                    "--config", f"protocol={{kind: div2k, root: {fake_div2k}}}").stdout
    plan = planned(out)
    counts = job_counts(out)
    assert len(plan["train-downsampler"]) == counts["train_downsampler"] == 5 * 2 * 4
    assert len(plan["train-sr"]) == counts["train_sr"] == 5 * 2 * 4
    assert len(plan["generate"]) == counts["generate_shards"] == 5 * 2 * 2
    config = yaml.safe_load((REPO / "config" / "div2k.yaml").read_text())
    assert config["generate"] == {"patch": 192, "patches_per_image": 64, "shard_size": 512, "backend": "torch"}
    check_paper_settings(plan, config["generate"])
    assert {o.device for o, _ in plan["train-downsampler"] + plan["train-sr"]} == {"cuda"}


def test_the_realsr_protocol_plans_the_papers_settings(workflow_copy, fake_realsr):  # noqa: F811
    protocol = (f"protocol={{kind: folders, hr: {fake_realsr}/hr, lr: {fake_realsr}/lr, "
                f"test_hr: {fake_realsr}/test_hr, test_lr: {fake_realsr}/test_lr}}")
    out = snakemake(workflow_copy, "-n", "-p", "--configfile", "config/realsr.yaml", "--config", protocol).stdout
    plan = planned(out)
    assert len(plan["train-downsampler"]) == 2 and len(plan["train-sr"]) == 3 and len(plan["generate"]) == 2
    config = yaml.safe_load((REPO / "config" / "realsr.yaml").read_text())
    check_paper_settings(plan, config["generate"])
    assert {o.scale for o, _ in plan["train-downsampler"]} == {2}


def test_a_partial_user_config_gets_the_papers_settings_not_the_smoke_runs(workflow_copy, fake_div2k):  # noqa: F811
    mine = workflow_copy / "mine.yaml"
    mine.write_text(yaml.safe_dump({"protocol": {"kind": "div2k", "root": str(fake_div2k)}}))
    out = snakemake(workflow_copy, "-n", "-p", "--configfile", str(mine)).stdout
    plan = planned(out)
    # Every kernel, scale, data term and method of the paper's tables.
    assert len(plan["train-downsampler"]) == len(plan["train-sr"]) == 5 * 2 * 4
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    defaults = {k: v["default"] for k, v in schema["properties"]["generate"]["properties"].items()}
    assert defaults.pop("parts") == 1  # the workflow's own key: one generate job per shard set
    assert defaults == {"patch": 192, "patches_per_image": 64, "shard_size": 512}
    check_paper_settings(plan, defaults)
    assert "results/div2k/" in out  # the dataset name defaults to the protocol's kind


def test_the_embedded_default_still_runs_the_smoke_settings(workflow_copy):  # noqa: F811
    out = snakemake(workflow_copy, "-n", "-p").stdout
    plan = planned(out)
    assert plan["train-downsampler"] and plan["train-sr"] and plan["generate"]
    smoke = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for section, command in (("downsampler", "train-downsampler"), ("sr", "train-sr")):
        for options, _ in plan[command]:
            for key, value in smoke[section]["options"].items():
                assert getattr(options, key) == value, (key, getattr(options, key), value)
    for options, _ in plan["generate"]:
        for key, value in smoke["generate"].items():
            assert getattr(options, key) == value


def test_the_test_configuration_is_the_embedded_default_of_a_run_in_dot_test(workflow_copy):  # noqa: F811
    shutil.copytree(REPO / ".test", workflow_copy / ".test")
    out = snakemake(workflow_copy, "-n", "-p", "--directory", ".test").stdout
    plan = planned(out)
    tiny = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    assert len(plan["train-downsampler"]) == len(tiny["downsampler"]["losses"])
    for options, _ in plan["train-downsampler"]:
        for key, value in tiny["downsampler"]["options"].items():
            assert getattr(options, key) == value


@pytest.mark.parametrize("override, message", [
    ("downsampler={options: {itrations: 4}}", "downsampler.options.itrations: unknown option; did you mean 'iterations'?"),
    ("sr={options: {batchsize: 4}}", "sr.options.batchsize: unknown option; did you mean 'batch_size'?"),
    ("generate={patches_per_img: 4}", "generate.patches_per_img: unknown option; did you mean 'patches_per_image'?"),
    ("generate={precision: fp64}", "generate.precision: 'fp64'; choose from auto, fp32, fp16, bf16"),
    ("sr={options: {iterations: 0}}", "sr.options.iterations: 0 is not a positive integer"),
    # Set by the rule itself from the wildcards: refused, not silently passed twice.
    ("downsampler={options: {scale: 4}}", "downsampler.options.scale: unknown option"),
])
def test_a_bad_option_key_is_refused_before_any_job_runs(workflow_copy, override, message):  # noqa: F811
    result = snakemake(workflow_copy, "-n", "--config", override, check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert message in text, text[-2000:]
    assert "Job stats" not in text


def test_the_cpu_protocol_plans_its_options_and_validates_on_the_test_split(workflow_copy):  # noqa: F811
    """config/cpu.yaml (docs/fidelity.md) runs its own options, and every downsampler is validated on the
    test split against the true LR and kernel of its own kernel folder."""
    out = snakemake(workflow_copy, "-n", "-p", "--configfile", "config/cpu.yaml").stdout
    plan = planned(out)
    config = yaml.safe_load((REPO / "config" / "cpu.yaml").read_text())
    assert len(plan["train-downsampler"]) == len(config["kernels"]) * len(config["downsampler"]["losses"])
    for options, args in plan["train-downsampler"]:
        for key, value in config["downsampler"]["options"].items():
            assert getattr(options, key) == value, (key, getattr(options, key), value)
        kernel = args.output.split("/")[3]  # results/cpu/x2/<kernel>/down-...
        assert options.val_hr == "resources/cpu/split/test_hr"
        assert options.val_lr == f"resources/cpu/x2/{kernel}/test_hr_lr"
        assert options.true_kernel == kernel
    for options, _ in plan["train-sr"]:
        for key, value in config["sr"]["options"].items():
            assert getattr(options, key) == value, (key, getattr(options, key), value)
    assert "--tile 128" in out  # the split shares tiles between the sides


def test_the_papers_configs_train_d_with_instancenorm(workflow_copy, fake_div2k, fake_realsr):  # noqa: F811
    """method.md §3: the paper's D trains with InstanceNorm (the authors' src/train.py keeps
    `--dis_norm Instance`; only their TestOptions, which trains no D, sets 'None'). Every planned
    train-downsampler of config/div2k.yaml, config/realsr.yaml and a protocol-only config gets it,
    whether by an explicit `--disc-norm instance` or by adl's default."""
    realsr = (f"protocol={{kind: folders, hr: {fake_realsr}/hr, lr: {fake_realsr}/lr, "
              f"test_hr: {fake_realsr}/test_hr, test_lr: {fake_realsr}/test_lr}}")
    mine = workflow_copy / "mine.yaml"
    mine.write_text(yaml.safe_dump({"protocol": {"kind": "div2k", "root": str(fake_div2k)}}))
    for name, extra, jobs in (("config/div2k.yaml", ["--config", f"protocol={{kind: div2k, root: {fake_div2k}}}"], 40),
                              ("config/realsr.yaml", ["--config", realsr], 2), (str(mine), [], 40)):
        out = snakemake(workflow_copy, "-n", "-p", "--configfile", name, *extra).stdout
        commands = [line for line in out.splitlines() if "adl -q train-downsampler " in line]
        plan = planned(out)["train-downsampler"]
        assert len(commands) == len(plan) == jobs, name
        for line, (options, _) in zip(commands, plan):
            assert options.disc_norm == "instance", (name, line)
            assert "--disc-norm none" not in line, (name, line)
    for name in ("div2k.yaml", "realsr.yaml"):  # the paper's configs spell it out
        assert yaml.safe_load((REPO / "config" / name).read_text())["downsampler"]["options"]["disc_norm"] == "instance"
    # config/cpu.yaml keeps the documented deviation (docs/fidelity.md, runs A and B).
    assert yaml.safe_load((REPO / "config" / "cpu.yaml").read_text())["downsampler"]["options"]["disc_norm"] == "none"
