# Reproduction of Pasquet et al. (2019), A&A 621, A26:
# photometric redshifts from SDSS images with a CNN.
#
#   snakemake                      the paper (paper/ms.pdf) from the default config
#   snakemake results/table2.csv   one table, and only what it needs
#   snakemake --profile profiles/slurm --configfile config/sdss-dr12.yaml
#
# The chain, one rule family per file in workflow/rules/:
#   mock_sky -> query -> frame_index -> retrieve -> cutouts -> shards
#   -> train -> predict -> ensemble -> knn / tables -> figures -> paper
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, found beside this Snakefile (also with --directory);
# --configfile presets are merged over it.
configfile: workflow.source_path("config.yaml")


include: "workflow/rules/common.smk"


# Each mode keeps its own results: the run's working directory is config
# `run_dir` ("auto": here in mode mock, runs/sdss in mode sdss); an explicit
# `snakemake --directory DIR` takes precedence.
if RUN_DIR != ".":

    workdir: RUN_DIR


wildcard_constraints:
    trial="[a-z][a-z0-9_]*",
    fold=r"\d+",
    seed=r"\d+",
    group=r"\d+",


rule all:
    input:
        "paper/ms.pdf",
    default_target: True


include: "workflow/rules/mock_sky.smk"
include: "workflow/rules/query.smk"
include: "workflow/rules/cutouts.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/zone.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"
