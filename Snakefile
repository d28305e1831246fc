"""ISAAC: sample training targets from the head of a corpus's long tail, train, evaluate."""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


report: "config/report/workflow.rst"


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/sample.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/experiments.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
