"""One declaration per option: the dataclass field is the option; the command line and the
workflow's config keys are derived from it (adl.options)."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import yaml
from test_workflow import REPO

from adl.cli import build_parser, main
from adl.downsampler.options import DownsamplerOptions
from adl.options import (
    MISSING,
    add_options,
    config_error,
    from_args,
    option,
    options_of,
)
from adl.shards.options import GenerateOptions
from adl.sr.options import SROptions

COMMANDS = {"train-downsampler": DownsamplerOptions, "train-sr": SROptions, "generate": GenerateOptions}
# What each command adds beyond its dataclass: the run folder, train-sr's --amp alias, and -q, which
# every subcommand accepts after its name too.
EXTRA = {"train-downsampler": {"output", "quiet"}, "train-sr": {"output", "quiet"}, "generate": {"quiet"}}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    sub.populate()  # what parsing the subcommand does first
    return sub


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_is_an_option_with_its_default_and_help_and_nothing_else(command, capsys):
    cls = COMMANDS[command]
    sub = subparser(command)
    # --amp is train-sr's alias of --precision bf16, not an option of its own.
    actions = {a.dest: a for a in sub._actions if a.dest != "help" and "--amp" not in a.option_strings}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(actions) - EXTRA[command] == set(fields)
    for name, f in fields.items():
        action = actions[name]
        meta = f.metadata["adl_option"]
        if f.default is MISSING:
            assert action.default is None
        else:
            assert action.default == f.default, name
        if f.type == "bool":
            assert action.option_strings == [f"--no-{name.replace('_', '-')}" if f.default else
                                             f"--{name.replace('_', '-')}"]
        else:
            assert action.option_strings == [f"--{name.replace('_', '-')}"]
        assert meta["help"] and action.help.startswith(meta["help"]), name
        assert action.choices == (tuple(meta["choices"]) if meta["choices"] else None)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name, f in fields.items():
        assert " ".join(f.metadata["adl_option"]["help"].split()) in shown, name


@pytest.mark.parametrize("command", COMMANDS)
def test_the_default_command_line_builds_the_dataclasss_defaults(command):
    cls = COMMANDS[command]
    given = {"train-downsampler": {"hr": "h", "lr": "l"}, "train-sr": {"lr_source": "bicubic"},
             "generate": {"model": "m.onnx", "hr": "h", "output": "o"}}[command]
    words = [w for name, value in given.items() for w in (f"--{name.replace('_', '-')}", value)]
    words += [] if command == "generate" else ["--output", "o"]
    built = from_args(cls, build_parser().parse_args([command, *words]))
    expected = {f.name: given.get(f.name) if f.default is MISSING else f.default for f in dataclasses.fields(cls)}
    if command == "generate":
        expected["hr"] = ["h"]  # --hr takes one or more folders, lists or globs
    assert dataclasses.asdict(built) == expected


def test_a_new_field_is_all_a_new_option_needs():
    @dataclasses.dataclass
    class Made:
        path: str = option(help="a required path")
        count: int = option(3, "how many", minimum=1)
        rate: float | None = option(None, "a rate (default: derived)")
        mode: str = option("a", "which mode", choices=("a", "b"))
        fast: bool = option(False, "go fast")
        checks: bool = option(True, "skip the checks")

    parser = argparse.ArgumentParser()
    add_options(parser, Made)
    made = from_args(Made, parser.parse_args(["--path", "p", "--count", "5", "--rate", "0.5", "--mode", "b",
                                              "--fast", "--no-checks"]))
    assert made == Made("p", 5, 0.5, "b", True, False)
    assert from_args(Made, parser.parse_args(["--path", "p"])) == Made("p")
    assert "how many (default 3)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--path", "p", "--count", "0"])
    assert config_error(Made, {"count": 2, "mode": "b", "fast": True}, "made") is None
    assert config_error(Made, {"cuont": 2}, "made") == "made.cuont: unknown option; did you mean 'count'?"
    assert config_error(Made, {"count": 0}, "made") == "made.count: 0 is not a positive integer"
    assert config_error(Made, {"count": "x"}, "made") == "made.count: 'x' is not an integer"
    assert config_error(Made, {"mode": "c"}, "made") == "made.mode: 'c'; choose from a, b"
    assert config_error(Made, {"fast": "yes"}, "made") == "made.fast: 'yes' is not true or false"
    assert config_error(Made, {"rate": [1]}, "made") == "made.rate: [1] is not a single float value"
    assert config_error(Made, {"path": "p"}, "made", exclude={"path"}).startswith("made.path: unknown option")


def test_a_field_not_declared_with_option_is_refused():
    @dataclasses.dataclass
    class Plain:
        x: int = 1

    with pytest.raises(TypeError, match="Plain.x: declare it with adl.options.option"):
        options_of(Plain)


def rule_set_fields() -> dict[str, tuple[type, set[str]]]:
    """OPTION_SECTIONS of workflow/rules/common.smk, read from the file."""
    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    classes = {"DownsamplerOptions": DownsamplerOptions, "SROptions": SROptions, "GenerateOptions": GenerateOptions}
    found = {}
    for where, cls, names in re.findall(r'"([\w.]+)": \(\s*"adl\.[\w.]+:(\w+)",\s*\{([^}]*)\}', text):
        found[where] = (classes[cls], set(re.findall(r'"(\w+)"', names)))
    return found


def test_the_workflow_accepts_every_field_but_those_its_rules_set():
    sections = rule_set_fields()
    assert set(sections) == {"downsampler.options", "sr.options", "generate"}
    for where, (cls, set_by_rule) in sections.items():
        fields = {o.name: o for o in options_of(cls)}
        assert set_by_rule <= set(fields)
        every = {name: o.default for name, o in fields.items()
                 if name not in set_by_rule and o.default not in (MISSING, None)}
        assert config_error(cls, every, where, exclude=set_by_rule) is None
        for name in set_by_rule:
            assert config_error(cls, {name: "x"}, where, exclude=set_by_rule).startswith(f"{where}.{name}: unknown")
    # The schema's own generate keys (its defaults) are fields of GenerateOptions, but for `parts`,
    # the workflow's own key (how many jobs generate one shard set).
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    generate_keys = set(schema["properties"]["generate"]["properties"]) - {"parts"}
    assert generate_keys <= {o.name for o in options_of(GenerateOptions)} - sections["generate"][1]


def test_the_discriminator_trains_with_instancenorm_by_default():
    """The paper's D (method.md §3): the authors' src/train.py keeps `--dis_norm Instance` (only their
    TestOptions, which trains no D, sets 'None'). `none` stays an option (config/cpu.yaml)."""
    field = next(f for f in dataclasses.fields(DownsamplerOptions) if f.name == "disc_norm")
    assert field.default == "instance"
    assert DownsamplerOptions(hr="h", lr="l").resolved().disc_norm == "instance"
    action = next(a for a in subparser("train-downsampler")._actions if a.dest == "disc_norm")
    assert action.default == "instance" and set(action.choices) == {"instance", "none"}
    args = build_parser().parse_args(["train-downsampler", "--hr", "h", "--lr", "l", "--output", "o"])
    assert from_args(DownsamplerOptions, args).disc_norm == "instance"
    args = build_parser().parse_args(["train-downsampler", "--hr", "h", "--lr", "l", "--output", "o",
                                      "--disc-norm", "none"])
    assert from_args(DownsamplerOptions, args).disc_norm == "none"


@pytest.mark.parametrize("build, message", [
    (lambda: DownsamplerOptions(hr="h", lr="l", batch_size=0).resolved(), "--batch-size 0: must be at least 1"),
    (lambda: DownsamplerOptions(hr="h", lr="l", warmup=-1).resolved(), "--warmup -1: must not be negative"),
    (lambda: DownsamplerOptions(hr="h", lr="l", scale=3).resolved(), "--scale 3: unknown; choose from 2, 4"),
    (lambda: DownsamplerOptions(hr="h", lr="l", disc_norm="batch").resolved(), "--disc-norm batch: unknown"),
    (lambda: DownsamplerOptions(hr="h", lr="l", lr_rate=float("nan")).resolved(), "--lr-rate: nan is not a finite"),
    (lambda: SROptions(hr="h", lr_source="bicubic", decay_at=-1).resolved(), "--decay-at -1: must not be negative"),
    (lambda: SROptions(hr="h", lr_source="bicubic", model="srcnn").resolved(), "--model srcnn: unknown"),
    (lambda: GenerateOptions(model="m", hr="h", output="o", gzip_level=10).check(), "--gzip-level 10: must be at most 9"),
    (lambda: GenerateOptions(model="m", hr="h", output="o", writers=-1).check(), "--writers -1: must not be negative"),
])
def test_each_option_s_own_range_is_enforced_outside_the_command_line(build, message):
    """An option's metadata (choices, minimum, maximum, parse) is enforced by adl.options for options
    built in Python too, so that resolved() needs to check only how fields relate to each other."""
    from adl.errors import UsageError

    with pytest.raises(UsageError) as caught:
        build()
    assert str(caught.value).startswith(message)


def test_an_integer_range_is_a_usage_error_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["generate", "--model", "m.onnx", "--hr", "h", "--output", "o", "--gzip-level", "10"])
    assert caught.value.code == 2
    assert "--gzip-level: 10 is not an integer 0 to 9" in capsys.readouterr().err
