# Tables (paper layout, plus comparisons with the paper's numbers), figures and the report.


# Seconds of work each, on files already here: on a cluster they run on the submitting host
# instead of waiting in a (GPU) partition's queue.
localrules:
    table1,
    table3,
    kernels_table,
    figure_kernels,
    figure_curves,
    figure_crops,


rule table1:
    input:
        expand(f"{DOWN}/lr_psnr.json", scale=SCALES, kernel=KERNELS, loss=LOSSES),
    output:
        table=report(
            "results/table1.csv", caption="../report/table1.rst", category="Tables"
        ),
        paper=report(
            "results/table1_vs_paper.csv",
            caption="../report/vs_paper.rst",
            category="Tables",
        ),
    log:
        "logs/table1.log",
    benchmark:
        "results/benchmarks/table1.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind table1 --output {output.table} {input} > {log} 2>&1"


rule table3:
    input:
        expand(
            f"{SR}/metrics.json",
            scale=SCALES,
            kernel=KERNELS,
            model=MODELS,
            method=METHODS,
        ),
    output:
        table=report(
            "results/table3.csv", caption="../report/table3.rst", category="Tables"
        ),
        paper=report(
            "results/table3_vs_paper.csv",
            caption="../report/vs_paper.rst",
            category="Tables",
        ),
    log:
        "logs/table3.log",
    benchmark:
        "results/benchmarks/table3.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind table3 --output {output.table} {input} > {log} 2>&1"


rule kernels_table:
    input:
        expand(f"{DOWN}/similarity.json", scale=SCALES, kernel=KERNELS, loss=LOSSES),
    output:
        table=report(
            "results/kernels.csv", caption="../report/kernels.rst", category="Tables"
        ),
        paper=report(
            "results/kernels_vs_paper.csv",
            caption="../report/vs_paper.rst",
            category="Tables",
        ),
    log:
        "logs/kernels_table.log",
    benchmark:
        "results/benchmarks/kernels_table.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind kernels --output {output.table} {input} > {log} 2>&1"


rule figure_kernels:
    input:
        truth=true_kernel_file,
        retrieved=expand(f"{DOWN}/retrieved.npy", loss="adl", allow_missing=True),
    output:
        report(
            f"results/figures/{DATASET}/kernels-x{{scale}}-{{kernel}}.png",
            caption="../report/kernels_figure.rst",
            category="Kernels",
        ),
    log:
        f"logs/{DATASET}/figures/kernels-x{{scale}}-{{kernel}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/figures/kernels-x{{scale}}-{{kernel}}.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    params:
        label="x{scale} {kernel}, ADL",
    shell:
        "adl -q figure kernels --output {output} --true {input.truth} --retrieved {input.retrieved} "
        "--scale {wildcards.scale} --label '{params.label}' > {log} 2>&1"


rule figure_curves:
    input:
        expand(f"{DOWN}/summary.json", loss=LOSSES, allow_missing=True),
    output:
        report(
            f"results/figures/{DATASET}/curves-x{{scale}}-{{kernel}}.png",
            caption="../report/curves.rst",
            category="Training curves",
        ),
    log:
        f"logs/{DATASET}/figures/curves-x{{scale}}-{{kernel}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/figures/curves-x{{scale}}-{{kernel}}.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    params:
        logs=curve_logs,
    shell:
        "adl -q figure curves --output {output} {params.logs} > {log} 2>&1"


rule figure_crops:
    input:
        sr=expand(f"{SR}/test_sr", method=METHODS[-1], allow_missing=True),
        lr=test_lr,
        hr=f"resources/{DATASET}/split/test_hr.txt",
    output:
        report(
            f"results/figures/{DATASET}/crops-x{{scale}}-{{kernel}}-{{model}}.png",
            caption="../report/crops.rst",
            category="Crops",
        ),
    log:
        f"logs/{DATASET}/figures/crops-x{{scale}}-{{kernel}}-{{model}}.log",
    benchmark:
        f"results/benchmarks/{DATASET}/figures/crops-x{{scale}}-{{kernel}}-{{model}}.tsv"
    conda:
        "../envs/adl.yaml"
    resources:
        runtime=5,
    params:
        lr=lambda w, input: folder(input.lr),
        hr=lambda w, input: folder(input.hr),
    shell:
        "(name=$(ls {input.sr} | head -n 1); stem=${{name%.*}}; "
        "adl -q figure crops --output {output} --lr $(ls {params.lr}/$stem.* | head -n 1) "
        "--sr {input.sr}/$name --hr $(ls {params.hr}/$stem.* | head -n 1)) > {log} 2>&1"
