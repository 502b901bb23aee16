# The data: split the dataset, write the true kernels, degrade with each synthetic kernel.


rule split:
    output:
        ensure(
            expand(
                "resources/{dataset}/split/{part}.txt",
                dataset=DATASET,
                part=SPLIT_PARTS,
            ),
            non_empty=True,
        ),
    log:
        f"logs/{DATASET}/split.log",
    benchmark:
        f"results/benchmarks/{DATASET}/split.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=runtime("data", 30),
    params:
        out=lambda w, output: folder_of(output[0]),
        protocol=PROTOCOL,
        options=split_options(),
    shell:
        "adl -q split --protocol {params.protocol} {params.options} --output {params.out} > {log} 2>&1"


rule true_kernels:
    output:
        expand(
            "resources/{dataset}/kernels/x{{scale}}/{kernel}.npy",
            dataset=DATASET,
            kernel=SYNTHETIC_KERNELS,
        ),
    log:
        f"logs/{DATASET}/kernels-x{{scale}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/kernels-x{{scale}}.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=runtime("data", 30),
    params:
        out=lambda w, output: folder_of(output[0]),
    shell:
        "adl -q kernels --scale {wildcards.scale} --output {params.out} > {log} 2>&1"


rule degrade:
    """(HR ∗ k)↓s of the LR-source images (the unpaired LR set) or of the test images (their true LR)."""
    input:
        f"resources/{DATASET}/split/{{source}}.txt",
    output:
        directory(f"resources/{DATASET}/x{{scale}}/{{kernel}}/{{source}}_lr"),
    log:
        f"logs/{DATASET}/degrade/x{{scale}}-{{kernel}}-{{source}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/degrade/x{{scale}}-{{kernel}}-{{source}}.tsv"
    wildcard_constraints:
        source="lr_source|test_hr",
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        folder=lambda w, input: folder(input[0]),
        kernel=true_kernel,
        device=DEVICE,
    shell:
        "OMP_NUM_THREADS={threads} adl -q degrade --input {params.folder} --output {output} "
        "--scale {wildcards.scale} --kernel {params.kernel} --device {params.device} > {log} 2>&1"


rule degrade_noisy:
    """(HR ∗ k)↓s + n with protocol.noise's law: the noisy LR side, test LR and oracle LR (docs/noise.md)."""
    input:
        f"resources/{DATASET}/split/{{source}}.txt",
    output:
        directory(f"resources/{DATASET}/x{{scale}}/{{kernel}}/{{source}}_lr_noisy"),
    log:
        f"logs/{DATASET}/degrade/x{{scale}}-{{kernel}}-{{source}}-noisy.log",
    benchmark:
        f"results/benchmarks/{DATASET}/degrade/x{{scale}}-{{kernel}}-{{source}}-noisy.tsv"
    wildcard_constraints:
        source="lr_source|test_hr|hr",
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        folder=lambda w, input: folder(input[0]),
        kernel=true_kernel,
        noise=shlex.quote(str(NOISE)),
        seed=lambda w: NOISE_SEEDS[w.source],
        device=DEVICE,
    shell:
        "OMP_NUM_THREADS={threads} adl degrade --input {params.folder} --output {output} --scale {wildcards.scale} "
        "--kernel {params.kernel} --noise {params.noise} --seed {params.seed} --device {params.device} > {log} 2>&1"


rule denoise_lr:
    """The LR set denoised before G trains on it (paper §4.7; lr.denoise, docs/noise.md)."""
    input:
        noisy_lr,
    output:
        directory(f"resources/{DATASET}/x{{scale}}/{{kernel}}/lr_denoised-{{method}}"),
    log:
        f"logs/{DATASET}/denoise/x{{scale}}-{{kernel}}-{{method}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/denoise/x{{scale}}-{{kernel}}-{{method}}.tsv"
    wildcard_constraints:
        method="bm3d|nl-means|wavelet",
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 60),
    params:
        folder=lambda w, input: folder(input[0]),
    shell:
        "OMP_NUM_THREADS={threads} adl -q denoise --input {params.folder} --output {output} "
        "--method {wildcards.method} > {log} 2>&1"


rule noise_model:
    """The LR set's noise model, from its residual to the denoised set (lr.inject, docs/noise.md)."""
    input:
        noisy=noisy_lr,
        clean=f"resources/{DATASET}/x{{scale}}/{{kernel}}/lr_denoised-{{method}}",
    output:
        f"resources/{DATASET}/x{{scale}}/{{kernel}}/noise-{{method}}.npz",
    log:
        f"logs/{DATASET}/noise_model/x{{scale}}-{{kernel}}-{{method}}.log",
    wildcard_constraints:
        method="bm3d|nl-means|wavelet",
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    params:
        noisy=lambda w, input: folder(input.noisy),
        options=cli_options(config.get("lr", {}).get("noise_model", {})),
    shell:
        "adl -q noise-model --noisy {params.noisy} --clean {input.clean} --output {output} "
        "--scale {wildcards.scale} {params.options} > {log} 2>&1"
