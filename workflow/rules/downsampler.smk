# Stage 1: learn G per data term, score it (Table 1), retrieve its kernel, export it (adl/downsampler/).


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
        target=clean_test_lr,
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
