# Stage 1: learn G per data term, score it (Table 1), retrieve its kernel, export it, make shards.


rule train_downsampler:
    input:
        unpack(validation_inputs),
        hr=f"resources/{DATASET}/split/hr.txt",
        lr=train_lr,
    output:
        ensure(f"{DOWN}/summary.json", non_empty=True),
    log:
        f"logs/{DATASET}/train_downsampler/x{{scale}}-{{kernel}}-{{loss}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/train_downsampler/x{{scale}}-{{kernel}}-{{loss}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("train_downsampler", 240),
    params:
        run=lambda w, output: folder_of(output[0]),
        hr=lambda w, input: folder(input.hr),
        lr=lambda w, input: folder(input.lr),
        device=DEVICE,
        options=cli_options(config["downsampler"]["options"]),
        validation=validation_options,
    shell:
        "OMP_NUM_THREADS={threads} adl -q train-downsampler --hr {params.hr} --lr {params.lr} "
        "--scale {wildcards.scale} --data-loss {wildcards.loss} --output {params.run} "
        "--device {params.device} {params.options} {params.validation} > {log} 2>&1"


rule lr_psnr:
    """Table 1: LR PSNR of G(test HR) against the true test LR (8 LR pixels shaved)."""
    input:
        run=f"{DOWN}/summary.json",
        hr=f"resources/{DATASET}/split/test_hr.txt",
        target=test_lr,
    output:
        psnr=f"{DOWN}/lr_psnr.json",
        images=temp(directory(f"{DOWN}/test_lr")),
    log:
        f"logs/{DATASET}/lr_psnr/x{{scale}}-{{kernel}}-{{loss}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/lr_psnr/x{{scale}}-{{kernel}}-{{loss}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        run=lambda w, input: folder_of(input.run),
        hr=lambda w, input: folder(input.hr),
        target=lambda w, input: folder(input.target),
        device=DEVICE,
    shell:
        "(OMP_NUM_THREADS={threads} adl -q downsample --checkpoint {params.run} --input {params.hr} "
        "--output {output.images} --scale {wildcards.scale} --device {params.device} && "
        "adl -q psnr --pred {output.images} --target {params.target} --shave 8 --json {output.psnr} "
        "--tag method={wildcards.loss} --tag scale={wildcards.scale} --tag kernel={wildcards.kernel}) > {log} 2>&1"


rule retrieve_kernel:
    """The kernel of the learned G (eq. 6) on the test HR images, and its similarity to the truth."""
    input:
        run=f"{DOWN}/summary.json",
        hr=f"resources/{DATASET}/split/test_hr.txt",
        truth=true_kernel_file,
    output:
        kernel=f"{DOWN}/retrieved.npy",
        picture=f"{DOWN}/retrieved.png",
        similarity=f"{DOWN}/similarity.json",
    log:
        f"logs/{DATASET}/retrieve_kernel/x{{scale}}-{{kernel}}-{{loss}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/retrieve_kernel/x{{scale}}-{{kernel}}-{{loss}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        run=lambda w, input: folder_of(input.run),
        hr=lambda w, input: folder(input.hr),
        device=DEVICE,
    shell:
        "(OMP_NUM_THREADS={threads} adl -q retrieve-kernel --hr {params.hr} --checkpoint {params.run} "
        "--scale {wildcards.scale} --output {output.kernel} --device {params.device} && "
        "adl -q kernel-similarity {output.kernel} {input.truth} --scale {wildcards.scale} "
        "--json {output.similarity} --tag method={wildcards.loss} --tag scale={wildcards.scale} "
        "--tag kernel={wildcards.kernel}) > {log} 2>&1"


rule export_onnx:
    input:
        f"{DOWN}/summary.json",
    output:
        ensure(f"{DOWN}/G.onnx", non_empty=True),
    log:
        f"logs/{DATASET}/export/x{{scale}}-{{kernel}}-{{loss}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/export/x{{scale}}-{{kernel}}-{{loss}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        run=lambda w, input: folder_of(input[0]),
    shell:
        "OMP_NUM_THREADS={threads} adl -q export --checkpoint {params.run} --output {output} "
        "--scale {wildcards.scale} > {log} 2>&1"


SHARDS = f"{DOWN}/shards-{GEN_TAG}"
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
    shell:
        "OMP_NUM_THREADS={threads} adl -q generate --model {params.model} --hr {params.hr} --output {params.out} "
        "--workers {threads} --device {params.device} {params.options} {params.part} > {log} 2>&1"


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
