"""ISAAC: sample training targets from the head of a corpus's long tail, train, evaluate."""

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The package's source folder, for the rules' helpers and the config checks below.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from isaac.workflow_config import (  # noqa: E402
    refuse_duplicate_keys,
    refuse_non_finite,
    refuse_schema_error,
    refuse_without_slurm_controller,
)

# The defaults of config/schema.yaml are the base of every run. Without --configfile the demo
# runs; config files given with --configfile are layered on the base alone.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config" / "demo.yaml"


# A bad config stops here in one line naming the file or key (isaac.workflow_config); an
# experiment's point checks only its config, which the main workflow derived from these files.
if workflow.modifier.is_main_snakefile():
    for path in workflow.configfiles:
        refuse_duplicate_keys(path)
refuse_non_finite(config)
try:
    validate(config, "config/schema.yaml")
except WorkflowError as err:
    refuse_schema_error(err)


# A run through the SLURM executor stops before its first submission when no SLURM controller
# answers. Snakemake names the executor only when it runs the workflow, after reading this
# file, so the check is a start hook: it runs once the jobs are known and before any is
# submitted. A dry run is handed the dry-run executor and submits nothing, and the jobs on the
# nodes run without hooks (and with the slurm-jobstep executor), so neither checks.
onstart:
    if workflow.executor_plugin.name == "slurm":
        refuse_without_slurm_controller()


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
