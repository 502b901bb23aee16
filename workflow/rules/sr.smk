# Stage 2: SR networks trained on each Table 2 source, evaluated on the test pairs (Table 3).


rule train_sr:
    input:
        unpack(sr_inputs),
    output:
        ensure(f"{SR}/summary.json", non_empty=True),
    log:
        f"logs/{DATASET}/train_sr/x{{scale}}-{{kernel}}-{{model}}-{{method}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/train_sr/x{{scale}}-{{kernel}}-{{model}}-{{method}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("train_sr", 600),
    params:
        run=lambda w, output: folder_of(output[0]),
        hr=lambda w, input: folder(input.hr),
        source=lr_source,
        device=DEVICE,
        options=cli_options(config["sr"]["options"]),
    shell:
        "OMP_NUM_THREADS={threads} adl -q train-sr --hr {params.hr} --lr-source {params.source} "
        "--scale {wildcards.scale} --model {wildcards.model} --output {params.run} --device {params.device} "
        "{params.options} > {log} 2>&1"


rule evaluate_sr:
    """Table 3: SR PSNR/SSIM on the test pairs (RGB, s + 6 pixels shaved)."""
    input:
        run=f"{SR}/summary.json",
        lr=test_lr,
        hr=f"resources/{DATASET}/split/test_hr.txt",
    output:
        metrics=f"{SR}/metrics.json",
        images=directory(f"{SR}/test_sr"),
    log:
        f"logs/{DATASET}/evaluate_sr/x{{scale}}-{{kernel}}-{{model}}-{{method}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/evaluate_sr/x{{scale}}-{{kernel}}-{{model}}-{{method}}.tsv"
    conda:
        "../envs/adl.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("data", 60),
    params:
        run=lambda w, input: folder_of(input.run),
        lr=lambda w, input: folder(input.lr),
        hr=lambda w, input: folder(input.hr),
        device=DEVICE,
    shell:
        "OMP_NUM_THREADS={threads} adl -q evaluate-sr --checkpoint {params.run} --lr {params.lr} "
        "--hr {params.hr} --scale {wildcards.scale} --output {output.metrics} --save-dir {output.images} "
        "--device {params.device} --tag method={wildcards.method} --tag model={wildcards.model} "
        "--tag scale={wildcards.scale} --tag kernel={wildcards.kernel} > {log} 2>&1"
