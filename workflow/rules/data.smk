# Stage 1 of the data: split the dataset, then degrade with each synthetic kernel.

SPLIT_PARTS = ["hr", "lr", "test_hr", "test_lr"] if PROTOCOL == "folders" else ["hr", "lr_source", "test_hr"]


def split_options():
    p = config["protocol"]
    if PROTOCOL == "div2k":
        ranges = {k: p[k] for k in ("hr_range", "lr_range", "test_range") if k in p}
        return f"--root {p['root']} " + cli_options(ranges)
    if PROTOCOL == "folders":
        return cli_options({k: shlex.quote(p[k]) for k in ("hr", "lr", "test_hr", "test_lr")})
    return ""


rule split:
    output:
        ensure(expand(RES + "/split/{part}.txt", part=SPLIT_PARTS), non_empty=True),
    params:
        out=RES + "/split",
        options=split_options(),
    log:
        "logs/" + config["dataset"] + "/split.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/split.tsv"
    resources:
        runtime=runtime("data", 30),
    shell:
        "adl -q split --protocol {PROTOCOL} {params.options} --output {params.out} > {log} 2>&1"


rule true_kernels:
    output:
        expand(RES + "/kernels/x{{scale}}/{kernel}.npy", kernel=["k0", "k1", "k2", "k3", "k4"]),
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/" + config["dataset"] + "/kernels-x{scale}.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/kernels-x{scale}.tsv"
    resources:
        runtime=runtime("data", 30),
    shell:
        "adl -q kernels --scale {wildcards.scale} --output {params.out} > {log} 2>&1"


rule degrade:
    """(HR ∗ k)↓s of the LR-source images (the unpaired LR set) or of the test images (their true LR)."""
    input:
        RES + "/split/{source}.txt",
    output:
        directory(RES + "/x{scale}/{kernel}/{source}_lr"),
    wildcard_constraints:
        source="lr_source|test_hr",
    params:
        folder=lambda w, input: input[0][: -len(".txt")],
        kernel=true_kernel,
    log:
        "logs/" + config["dataset"] + "/degrade/x{scale}-{kernel}-{source}.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/degrade/x{scale}-{kernel}-{source}.tsv"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    shell:
        "OMP_NUM_THREADS={threads} adl -q degrade --input {params.folder} --output {output} "
        "--scale {wildcards.scale} --kernel {params.kernel} --device {DEVICE} > {log} 2>&1"


def train_lr(wildcards):
    """The unpaired LR set: degraded LR-source images, or the real LR images of a folders protocol."""
    if PROTOCOL == "folders":
        return RES + "/split/lr.txt"
    return RES + f"/x{wildcards.scale}/{wildcards.kernel}/lr_source_lr"


def test_lr(wildcards):
    if PROTOCOL == "folders":
        return RES + "/split/test_lr.txt"
    return RES + f"/x{wildcards.scale}/{wildcards.kernel}/test_hr_lr"


def folder(path):
    """Rules depend on a split's list file; commands read the folder beside it."""
    path = str(path)
    return path[: -len(".txt")] if path.endswith(".txt") else path
