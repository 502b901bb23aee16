# Tables (paper layout, plus comparisons with the paper's numbers), figures and the report.

rule table1:
    input:
        expand(DOWN + "/lr_psnr.json", scale=SCALES, kernel=KERNELS, loss=LOSSES),
    output:
        table=report("results/table1.csv", caption="../report/table1.rst", category="Tables"),
        paper=report("results/table1_vs_paper.csv", caption="../report/vs_paper.rst", category="Tables"),
    log:
        "logs/table1.log",
    benchmark:
        "results/benchmarks/table1.tsv"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind table1 --output {output.table} {input} > {log} 2>&1"


rule table3:
    input:
        expand(
            SR + "/metrics.json",
            scale=SCALES,
            kernel=KERNELS,
            model=MODELS,
            method=METHODS,
        ),
    output:
        table=report("results/table3.csv", caption="../report/table3.rst", category="Tables"),
        paper=report("results/table3_vs_paper.csv", caption="../report/vs_paper.rst", category="Tables"),
    log:
        "logs/table3.log",
    benchmark:
        "results/benchmarks/table3.tsv"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind table3 --output {output.table} {input} > {log} 2>&1"


rule kernels_table:
    input:
        expand(DOWN + "/similarity.json", scale=SCALES, kernel=KERNELS, loss=LOSSES),
    output:
        report("results/kernels.csv", caption="../report/kernels.rst", category="Tables"),
    log:
        "logs/kernels_table.log",
    benchmark:
        "results/benchmarks/kernels_table.tsv"
    resources:
        runtime=5,
    shell:
        "adl -q table --kind kernels --output {output} {input} > {log} 2>&1"


rule figure_kernels:
    input:
        truth=RES + "/kernels/x{scale}/{kernel}.npy",
        retrieved=DOWN.replace("{loss}", "adl") + "/retrieved.npy",
    output:
        report(FIG + "/kernels-x{scale}-{kernel}.png", caption="../report/kernels_figure.rst", category="Kernels"),
    log:
        "logs/" + config["dataset"] + "/figures/kernels-x{scale}-{kernel}.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/figures/kernels-x{scale}-{kernel}.tsv"
    resources:
        runtime=5,
    shell:
        "adl -q figure kernels --output {output} --true {input.truth} --retrieved {input.retrieved} "
        "--label 'x{wildcards.scale} {wildcards.kernel}: true | retrieved from G (ADL)' > {log} 2>&1"


rule figure_curves:
    input:
        expand(DOWN.replace("{scale}", "{{scale}}").replace("{kernel}", "{{kernel}}") + "/summary.json", loss=LOSSES),
    output:
        report(FIG + "/curves-x{scale}-{kernel}.png", caption="../report/curves.rst", category="Training curves"),
    params:
        logs=lambda w, input: [os.path.join(os.path.dirname(p), "log.csv") for p in input],
    log:
        "logs/" + config["dataset"] + "/figures/curves-x{scale}-{kernel}.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/figures/curves-x{scale}-{kernel}.tsv"
    resources:
        runtime=5,
    shell:
        "adl -q figure curves --output {output} {params.logs} > {log} 2>&1"


rule figure_crops:
    input:
        sr=SR.replace("{method}", METHODS[-1]) + "/test_sr",
        lr=test_lr,
        hr=RES + "/split/test_hr.txt",
    output:
        report(FIG + "/crops-x{scale}-{kernel}-{model}.png", caption="../report/crops.rst", category="Crops"),
    params:
        lr=lambda w, input: folder(input.lr),
        hr=lambda w, input: folder(input.hr),
    log:
        "logs/" + config["dataset"] + "/figures/crops-x{scale}-{kernel}-{model}.log",
    benchmark:
        "results/benchmarks/" + config["dataset"] + "/figures/crops-x{scale}-{kernel}-{model}.tsv"
    resources:
        runtime=5,
    shell:
        "(name=$(ls {input.sr} | head -n 1); stem=${{name%.*}}; "
        "adl -q figure crops --output {output} --lr $(ls {params.lr}/$stem.* | head -n 1) --sr {input.sr}/$name "
        "--hr $(ls {params.hr}/$stem.* | head -n 1)) > {log} 2>&1"
