"""ISAAC: sample training targets from the head of a corpus's long tail, train, evaluate."""

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# The defaults of config/schema.yaml are the base of every run. Without --configfile the demo
# runs; config files given with --configfile are layered on the base alone.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config" / "demo.yaml"


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
