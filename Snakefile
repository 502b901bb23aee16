# adl: Toward Real-World Super-Resolution via Adaptive Downsampling Models, end to end.
#   snakemake --cores 8 results/table3.csv                       (embedded default: a CPU smoke run)
#   snakemake --cores 8 --configfile config/div2k.yaml results/table3.csv   (the paper's protocol)
# Every rule is a thin call of the `adl` command line; see workflow/rules/.
from snakemake.utils import min_version, validate

min_version("8.0")


# Configuration layers, lowest first (config/README.md): the schema's defaults, which are the
# paper's settings (method.md §6-§8); then each --configfile; then --config. The embedded default,
# a CPU smoke run, is read only when no --configfile is given: Snakemake merges a --configfile into
# the Snakefile's configfile key by key, so the smoke run's tiny options would otherwise leak into
# every protocol that leaves an option out. A module's config (module ... config:) skips it too.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/downsampler.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/sr.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


# The default target: everything the report shows (common.smk's get_final_output). It is declared
# here because Snakemake takes its default target only from the main Snakefile.
rule all:
    default_target: True
    input:
        get_final_output(),
