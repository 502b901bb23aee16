# Shared names and helper functions. Rules stay thin: each calls `adl` subcommands.
import hashlib
import json
import os
import shlex

PROTOCOL = config["protocol"]["kind"]
# adl.choices.KERNEL_NAMES (tests/test_layout.py keeps the two equal; the workflow may run where
# adl is installed only in the rules' conda env, so it cannot import them).
SYNTHETIC_KERNELS = ["k0", "k1", "k2", "k3", "k4"]
# The folders protocol brings real LR images, with no kernel to name: its one "kernel" is "real".
KERNELS = ["real"] if PROTOCOL == "folders" else config["kernels"]
SYNTHETIC = (
    PROTOCOL != "folders"
)  # only synthetic kernels have a truth to compare kernels with
SCALES = config["scales"]
LOSSES = config["downsampler"]["losses"]
MODELS = config["sr"]["models"]
# Oracle needs the true kernel, which real LR does not have.
METHODS = [
    m for m in config["sr"]["methods"] if not (PROTOCOL == "folders" and m == "oracle")
]
DEVICE = config["device"]
DATASET = config.setdefault("dataset", PROTOCOL)
# The torch backend generates from the checkpoint (GPU machines whose onnxruntime lacks CUDA).
TORCH_GENERATE = config["generate"].get("backend") == "torch"
SPLIT_PARTS = (
    ["hr", "lr", "test_hr", "test_lr"]
    if PROTOCOL == "folders"
    else ["hr", "lr_source", "test_hr"]
)


def options_tag(options):
    """A short hash of a stage's options, part of its run folders' names. Changing an option
    therefore starts fresh runs beside the old ones (which stay cached, and are reused if the
    option is changed back) instead of resuming a run under other options, which adl refuses.
    """
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]


# Noisy LR sets (docs/noise.md): lr.denoise denoises the LR set before G trains on it; lr.inject adds
# its noise model's noise to every IDown. At their defaults ("none") the tags are those of before.
LR_DENOISE = config.get("lr", {}).get("denoise", "none")
LR_INJECT = config.get("lr", {}).get("inject", "none")
# protocol.noise (synthetic protocols, docs/noise.md): the LR side, the test LR that SR is evaluated
# on and the oracle's training LR get noise of this law after the kernel; G is still validated
# against the clean test LR, which is what it should reproduce. Each folder has its own seed.
NOISE = config["protocol"].get("noise") if SYNTHETIC else None
NOISE_SEEDS = {"lr_source": 1, "test_hr": 2, "hr": 3}


def tagged(options, **extras):
    """Options with the extras that are set: at their defaults the tags are those of before."""
    return {**options, **{k: v for k, v in extras.items() if v not in (None, "none")}}


DOWN_TAG = options_tag(
    tagged(config["downsampler"]["options"], lr_denoise=LR_DENOISE, noise=NOISE)
)
# How many jobs generate the shards changes nothing in them (docs/shards.md): not part of the tags.
GEN_PARTS = config["generate"].get("parts", 1)
GEN_OPTIONS = {k: v for k, v in config["generate"].items() if k != "parts"}
GEN_TAG = options_tag(tagged(GEN_OPTIONS, lr_inject=LR_INJECT))
# Each noisy-LR variant trains its own SR networks: the tag keeps their folders apart.
SR_TAG = options_tag(
    tagged(
        {"sr": config["sr"]["options"], "generate": GEN_OPTIONS},
        lr_denoise=LR_DENOISE,
        lr_inject=LR_INJECT,
        noise=NOISE,
    )
)
DOWN = f"results/{DATASET}/x{{scale}}/{{kernel}}/down-{{loss}}-{DOWN_TAG}"
SR = f"results/{DATASET}/x{{scale}}/{{kernel}}/sr-{{model}}-{{method}}-{SR_TAG}"


wildcard_constraints:
    scale="2|4",
    kernel="[A-Za-z0-9_-]+",
    loss="bicubic|avgpool|lfl|lfl-gauss|adl",
    model="edsr|rrdb",
    method="bicubic|oracle|lfl|adl",


def cli_options(options):
    """A config mapping as `adl` options: {"lr_patch": 32, "amp": true} -> --lr-patch 32 --amp."""
    words = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif value is not False:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def runtime(group, default):
    return config.get("resources", {}).get(group, default)


def split_options():
    p = config["protocol"]
    if PROTOCOL == "div2k":
        return cli_options(
            {k: p[k] for k in ("root", "hr_range", "lr_range", "test_range") if k in p}
        )
    if PROTOCOL == "folders":
        return cli_options({k: p[k] for k in ("hr", "lr", "test_hr", "test_lr")})
    return cli_options({k: p[k] for k in ("tile", "photos") if k in p})


def folder(path):
    """Rules depend on a split's list file; commands read the folder beside it."""
    path = str(path)
    return path[: -len(".txt")] if path.endswith(".txt") else path


def true_kernel(wildcards):
    """The kernel argument for `adl`: a synthetic name, or a .npy file under kernels/."""
    if wildcards.kernel in SYNTHETIC_KERNELS:
        return wildcards.kernel
    return f"kernels/{wildcards.kernel}.npy"


def true_kernel_file(wildcards):
    if wildcards.kernel in SYNTHETIC_KERNELS:
        return f"resources/{DATASET}/kernels/x{wildcards.scale}/{wildcards.kernel}.npy"
    return f"kernels/{wildcards.kernel}.npy"


def train_lr(wildcards):
    """The LR set G trains on: the noisy LR set as it is, or denoised (lr.denoise)."""
    if LR_DENOISE != "none":
        return f"resources/{DATASET}/x{wildcards.scale}/{wildcards.kernel}/lr_denoised-{LR_DENOISE}"
    return noisy_lr(wildcards)


def degraded(wildcards, source, noisy):
    suffix = "_noisy" if noisy else ""
    return (
        f"resources/{DATASET}/x{wildcards.scale}/{wildcards.kernel}/{source}_lr{suffix}"
    )


def noisy_lr(wildcards):
    """The unpaired LR set: degraded LR-source images (with protocol.noise), or the real LR images
    of a folders protocol."""
    if PROTOCOL == "folders":
        return f"resources/{DATASET}/split/lr.txt"
    return degraded(wildcards, "lr_source", NOISE)


def test_lr(wildcards):
    """The test LR that SR networks are evaluated on (noisy under protocol.noise)."""
    if PROTOCOL == "folders":
        return f"resources/{DATASET}/split/test_lr.txt"
    return degraded(wildcards, "test_hr", NOISE)


def clean_test_lr(wildcards):
    """The test LR that G(test HR) is scored against (Table 1): without protocol.noise's noise."""
    if PROTOCOL == "folders":
        return f"resources/{DATASET}/split/test_lr.txt"
    return degraded(wildcards, "test_hr", False)


def validation_inputs(wildcards):
    """Synthetic protocols validate G on the test split, whose true LR and kernel are known."""
    if not SYNTHETIC:
        return {}
    return {
        "val_hr": f"resources/{DATASET}/split/test_hr.txt",
        "val_lr": clean_test_lr(wildcards),
    }


def validation_options(wildcards, input):
    if not SYNTHETIC:
        return ""
    return cli_options(
        {
            "val_hr": folder(input.val_hr),
            "val_lr": input.val_lr,
            "true_kernel": true_kernel(wildcards),
        }
    )


def down_dir(scale, kernel, loss):
    return DOWN.format(scale=scale, kernel=kernel, loss=loss)


def lr_source(wildcards):
    """Bicubic: B(HR); Oracle: the true kernel; LFL/ADL: shards generated by that G."""
    if wildcards.method == "bicubic":
        return "bicubic"
    if wildcards.method == "oracle" and NOISE:
        return f"pairs:{degraded(wildcards, 'hr', True)}"  # the true kernel and the true noise
    if wildcards.method == "oracle":
        return f"kernel:{true_kernel(wildcards)}"
    return f"shards:{down_dir(wildcards.scale, wildcards.kernel, wildcards.method)}/shards-{GEN_TAG}"


def sr_inputs(wildcards):
    inputs = {"hr": f"resources/{DATASET}/split/hr.txt"}
    if wildcards.method == "oracle" and NOISE:
        inputs["oracle_lr"] = degraded(wildcards, "hr", True)
    if wildcards.method in ("lfl", "adl"):
        inputs["shards"] = (
            f"{down_dir(wildcards.scale, wildcards.kernel, wildcards.method)}/shards-{GEN_TAG}/manifest.json"
        )
    return inputs


def curve_logs(wildcards, input):
    return [f"{folder_of(p)}/log.csv" for p in input]


def folder_of(path):
    return str(path).rsplit("/", 1)[0]


def first_test_image(folder_path):
    """The first image of a folder, as the crops figure's example."""
    return sorted(p for p in os.listdir(folder_path) if not p.startswith("."))[0]


# Fields of each option dataclass that its rule sets itself, from wildcards or other keys; every
# other field is a valid key of that config section (adl.options declares each option once).
OPTION_SECTIONS = {
    "downsampler.options": (
        "adl.downsampler.options:DownsamplerOptions",
        {"hr", "lr", "scale", "data_loss", "device", "val_hr", "val_lr", "true_kernel"},
    ),
    "sr.options": (
        "adl.sr.options:SROptions",
        {"hr", "lr_source", "scale", "model", "device"},
    ),
    "generate": (
        "adl.shards.options:GenerateOptions",
        {"model", "hr", "output", "scale", "device", "workers", "part"},
    ),
}


def config_section(where):
    value = config
    for key in where.split("."):
        value = value[key]
    return value


def check_options():
    """Refuse an unknown or ill-typed option key, naming the closest valid key, before any job
    runs (otherwise it would fail only when its job starts, possibly hours into a run).
    """
    import importlib

    try:
        from adl.options import config_error
    except (
        ImportError
    ):  # adl lives only in the rules' conda env: each command checks then
        return
    for where, (path, set_by_rule) in OPTION_SECTIONS.items():
        module_name, _, name = path.partition(":")
        cls = getattr(importlib.import_module(module_name), name)
        # generate.parts is the workflow's own key (how many jobs), not an adl generate option.
        section = {
            k: v
            for k, v in config_section(where).items()
            if (where, k) != ("generate", "parts")
        }
        error = config_error(cls, section, where, exclude=set_by_rule)
        if error:
            raise WorkflowError(f"config {error} (workflow/schemas/config.schema.yaml)")


def check_dataset():
    """Report a missing or empty dataset by name before any job runs (the split rule would
    find it too, but only after the whole DAG was scheduled)."""
    try:
        from adl.errors import AdlError
        from adl.data.split import div2k_split, folders_split
    except (
        ImportError
    ):  # adl lives only in the rules' conda env: the split rule checks then
        return
    p = config["protocol"]
    try:
        if PROTOCOL == "div2k":
            div2k_split(
                p["root"],
                **{k: p[k] for k in ("hr_range", "lr_range", "test_range") if k in p},
            )
        elif PROTOCOL == "folders":
            folders_split(p["hr"], p["lr"], p["test_hr"], p["test_lr"])
    except AdlError as error:
        raise WorkflowError(f"dataset {DATASET!r}: {error}")


check_options()
check_dataset()


def get_final_output():
    """Everything the report shows: the tables, the exported downsamplers (a product of their
    own: other SR projects generate pairs with them) and the figures."""
    synthetic = lambda paths: paths if SYNTHETIC else []
    return [
        "results/table1.csv",
        "results/table3.csv",
        *synthetic(["results/kernels.csv"]),
        *expand(
            f"{DOWN}/G.onnx",
            scale=SCALES,
            kernel=KERNELS,
            loss=[l for l in LOSSES if l in ("lfl", "adl")],
        ),
        *synthetic(
            expand(
                "results/figures/{dataset}/kernels-x{scale}-{kernel}.png",
                dataset=DATASET,
                scale=SCALES,
                kernel=KERNELS,
            )
        ),
        *expand(
            "results/figures/{dataset}/curves-x{scale}-{kernel}.png",
            dataset=DATASET,
            scale=SCALES,
            kernel=KERNELS,
        ),
        *expand(
            "results/figures/{dataset}/crops-x{scale}-{kernel}-{model}.png",
            dataset=DATASET,
            scale=SCALES,
            kernel=KERNELS,
            model=MODELS,
        ),
    ]
