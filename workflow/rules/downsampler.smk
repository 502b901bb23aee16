# Stage 1: learn G per data term, score it (Table 1), retrieve its kernel, export it, make shards.

DOWN = OUT + "/x{scale}/{kernel}/down-{loss}-" + DOWN_TAG
LOGS = "logs/" + config["dataset"]


def down_dir(scale, kernel, loss):
    return DOWN.format(scale=scale, kernel=kernel, loss=loss)
BENCH = "results/benchmarks/" + config["dataset"]


rule train_downsampler:
    input:
        hr=RES + "/split/hr.txt",
        lr=train_lr,
    output:
        ensure(DOWN + "/summary.json", non_empty=True),
    params:
        run=DOWN,
        hr=lambda w, input: folder(input.hr),
        lr=lambda w, input: folder(input.lr),
        options=cli_options(config["downsampler"]["options"]),
    log:
        LOGS + "/train_downsampler/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/train_downsampler/x{scale}-{kernel}-{loss}.tsv"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("train_downsampler", 240),
    shell:
        "OMP_NUM_THREADS={threads} adl -q train-downsampler --hr {params.hr} --lr {params.lr} "
        "--scale {wildcards.scale} --data-loss {wildcards.loss} --output {params.run} --device {DEVICE} "
        "{params.options} > {log} 2>&1"


rule downsample_test:
    """G(test HR), to be scored against the true test LR."""
    input:
        run=DOWN + "/summary.json",
        hr=RES + "/split/test_hr.txt",
    output:
        temp(directory(DOWN + "/test_lr")),
    params:
        hr=lambda w, input: folder(input.hr),
    log:
        LOGS + "/downsample_test/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/downsample_test/x{scale}-{kernel}-{loss}.tsv"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    shell:
        "OMP_NUM_THREADS={threads} adl -q downsample --checkpoint $(dirname {input.run}) --input {params.hr} "
        "--output {output} --scale {wildcards.scale} --device {DEVICE} > {log} 2>&1"


rule lr_psnr:
    """Table 1: LR PSNR of G(test HR) against the true LR (8 LR pixels shaved)."""
    input:
        pred=DOWN + "/test_lr",
        target=test_lr,
    output:
        DOWN + "/lr_psnr.json",
    params:
        target=lambda w, input: folder(input.target),
    log:
        LOGS + "/lr_psnr/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/lr_psnr/x{scale}-{kernel}-{loss}.tsv"
    resources:
        runtime=runtime("data", 30),
    shell:
        "adl -q psnr --pred {input.pred} --target {params.target} --shave 8 --json {output} "
        "--tag method={wildcards.loss} --tag scale={wildcards.scale} --tag kernel={wildcards.kernel} > {log} 2>&1"


rule retrieve_kernel:
    """The kernel of the learned G (eq. 6) on the test HR images, and its similarity to the truth."""
    input:
        run=DOWN + "/summary.json",
        hr=RES + "/split/test_hr.txt",
        truth=RES + "/kernels/x{scale}/{kernel}.npy",
    output:
        kernel=DOWN + "/retrieved.npy",
        picture=DOWN + "/retrieved.png",
        similarity=DOWN + "/similarity.json",
    params:
        hr=lambda w, input: folder(input.hr),
    log:
        LOGS + "/retrieve_kernel/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/retrieve_kernel/x{scale}-{kernel}-{loss}.tsv"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    shell:
        "(OMP_NUM_THREADS={threads} adl -q retrieve-kernel --hr {params.hr} --checkpoint $(dirname {input.run}) "
        "--scale {wildcards.scale} --output {output.kernel} --device {DEVICE} && "
        "adl -q kernel-similarity {output.kernel} {input.truth} --scale {wildcards.scale} --json {output.similarity} "
        "--tag method={wildcards.loss} --tag scale={wildcards.scale} --tag kernel={wildcards.kernel}) > {log} 2>&1"


rule export_onnx:
    input:
        DOWN + "/summary.json",
    output:
        ensure(DOWN + "/G.onnx", non_empty=True),
    log:
        LOGS + "/export/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/export/x{scale}-{kernel}-{loss}.tsv"
    threads: 1
    resources:
        runtime=runtime("data", 30),
    shell:
        "OMP_NUM_THREADS={threads} adl -q export --checkpoint $(dirname {input}) --output {output} "
        "--scale {wildcards.scale} > {log} 2>&1"


rule generate_shards:
    """(G(HR), HR) training pairs for the SR stage ("Proposed" rows)."""
    input:
        model=DOWN + "/G.onnx",
        hr=RES + "/split/hr.txt",
    output:
        ensure(DOWN + "/shards/manifest.json", non_empty=True),
    params:
        out=DOWN + "/shards",
        hr=lambda w, input: folder(input.hr),
        options=cli_options(config["generate"]),
    log:
        LOGS + "/generate/x{scale}-{kernel}-{loss}.log",
    benchmark:
        BENCH + "/generate/x{scale}-{kernel}-{loss}.tsv"
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("generate", 60),
    shell:
        "OMP_NUM_THREADS={threads} adl -q generate --model {input.model} --hr {params.hr} --output {params.out} "
        "--workers {threads} --device {DEVICE} {params.options} > {log} 2>&1"
