# adl: Toward Real-World Super-Resolution via Adaptive Downsampling Models, end to end.
#   snakemake --cores 8 results/table3.csv                       (embedded default: a CPU smoke run)
#   snakemake --cores 8 --configfile config/div2k.yaml results/table3.csv   (the paper's protocol)
# Every rule is a thin call of the `adl` command line; see workflow/rules/.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/downsampler.smk"
include: "workflow/rules/sr.smk"
include: "workflow/rules/report.smk"
