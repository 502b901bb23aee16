# The shard stage: (G(HR), HR) training pairs from each exported G (adl/shards/).
# With generate.parts > 1 each job writes one part (adl generate --part I/N) and merge_shards
# joins them into the same folder, with the same bytes, that one job would have written.
PART = f"{SHARDS}.parts/{{part}}-of-{GEN_PARTS}"
GEN_JOB = "x{scale}-{kernel}-{loss}" + (
    "" if GEN_PARTS == 1 else f"-{{part}}-of-{GEN_PARTS}"
)


wildcard_constraints:
    part="[0-9]+",


rule generate_shards:
    """(G(HR), HR) training pairs for the SR stage ("Proposed" rows): all of them, or one part."""
    input:
        model=f"{DOWN}/summary.json" if TORCH_GENERATE else f"{DOWN}/G.onnx",
        hr=f"resources/{DATASET}/split/hr.txt",
        noise=(
            []
            if LR_INJECT == "none"
            else f"resources/{DATASET}/x{{scale}}/{{kernel}}/noise-{LR_DENOISE}.npz"
        ),
    output:
        ensure(
            f"{SHARDS}/manifest.json" if GEN_PARTS == 1 else f"{PART}/manifest.json",
            non_empty=True,
        ),
    log:
        f"logs/{DATASET}/generate/{GEN_JOB}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/generate/{GEN_JOB}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("generate", 60),
    params:
        model=lambda w, input: folder_of(input.model) if TORCH_GENERATE else input.model,
        out=lambda w, output: folder_of(output[0]),
        hr=lambda w, input: folder(input.hr),
        device=DEVICE,
        options=cli_options(GEN_OPTIONS),
        part=lambda w: f"--part {w.part}/{GEN_PARTS}" if GEN_PARTS > 1 else "",
        noise=lambda w, input: (
            ""
            if LR_INJECT == "none"
            else f"--noise {input.noise} --noise-mode {LR_INJECT}"
        ),
    shell:
        "OMP_NUM_THREADS={threads} adl -q generate --model {params.model} --hr {params.hr} --output {params.out} "
        "--workers {threads} --device {params.device} {params.options} {params.part} {params.noise} > {log} 2>&1"


if GEN_PARTS > 1:

    rule merge_shards:
        """One shard folder from the parts, by hard links: no payload is copied."""
        input:
            expand(
                f"{PART}/manifest.json",
                part=range(1, GEN_PARTS + 1),
                allow_missing=True,
            ),
        output:
            ensure(f"{SHARDS}/manifest.json", non_empty=True),
        log:
            f"logs/{DATASET}/generate/x{{scale}}-{{kernel}}-{{loss}}-merge.log",
        conda:
            "../envs/adl.yaml"
        threads: 1
        resources:
            runtime=runtime("data", 30),
        params:
            parts=lambda w, input: " ".join(folder_of(p) for p in input),
            out=lambda w, output: folder_of(output[0]),
        shell:
            "adl -q merge-shards {params.parts} --output {params.out} > {log} 2>&1"
