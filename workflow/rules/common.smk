# Shared names and helpers. Rules stay thin: each calls one `adl` subcommand.
import hashlib
import json
import os
import shlex

PROTOCOL = config["protocol"]["kind"]
# The folders protocol brings real LR images, with no kernel to name: its one "kernel" is "real".
KERNELS = ["real"] if PROTOCOL == "folders" else config["kernels"]
SCALES = config["scales"]
LOSSES = config["downsampler"]["losses"]
MODELS = config["sr"]["models"]
# Oracle needs the true kernel, which real LR does not have.
METHODS = [m for m in config["sr"]["methods"] if not (PROTOCOL == "folders" and m == "oracle")]
LEARNED = [m for m in METHODS if m in ("lfl", "adl")]
DEVICE = config["device"]
RES = "resources/" + config["dataset"]
OUT = "results/" + config["dataset"]
FIG = "results/figures/" + config["dataset"]
SYNTHETIC = PROTOCOL != "folders"  # only synthetic kernels have a truth to compare kernels with


wildcard_constraints:
    scale="2|4",
    kernel="[A-Za-z0-9_-]+",
    loss="bicubic|avgpool|lfl|lfl-gauss|adl",
    model="edsr|rrdb",
    method="bicubic|oracle|lfl|adl",
    part="hr|lr_source|lr|test_hr|test_lr",


def cli_options(options):
    """A config mapping as `adl` options: {"lr_patch": 32, "amp": true} -> --lr-patch 32 --amp."""
    words = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not False:
            words += [flag, str(value)]
    return " ".join(words)


def options_tag(options):
    """A short hash of a stage's options, part of its run folders' names. Changing an option
    therefore starts fresh runs beside the old ones (which stay cached, and are reused if the
    option is changed back) instead of resuming a run under other options, which adl refuses."""
    text = json.dumps(options, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


DOWN_TAG = options_tag(config["downsampler"]["options"])
SR_TAG = options_tag({"sr": config["sr"]["options"], "generate": config["generate"]})


def runtime(group, default):
    return config.get("resources", {}).get(group, default)


def true_kernel(wildcards):
    """The kernel argument for `adl`: a synthetic name, or a .npy file under kernels/."""
    return wildcards.kernel if wildcards.kernel in ("k0", "k1", "k2", "k3", "k4") else f"kernels/{wildcards.kernel}.npy"
