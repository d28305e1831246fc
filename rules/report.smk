"""Report stages: the summary of every run and the figures drawn from it."""

import os

from isaac.provenance import LAYERS_ENV

# The config files of this invocation reach the summary's provenance.json through the
# environment (isaac.provenance.LAYERS_ENV), not as a parameter: layering another file reruns
# nothing.
os.environ[LAYERS_ENV] = "\n".join(str(path) for path in workflow.configfiles)


# The summary reads results only; plotting options (config "report") reach only the plot rule.
rule summary:
    input:
        scores=[res("scores", f"{run}.json") for run in sweep_runs()],
        per_prompt=[res("scores", f"{run}.parquet") for run in sweep_runs()],
        targets=[
            training_stats(run)
            for run in sweep_runs()
            if run_method(run) not in MODEL_FREE_METHODS
        ],
        judge=judge_folder("train", config["judge"]["features"]),
        second_judge=second_judge(),
    output:
        csv=report(
            res("summary.csv"),
            caption="../config/report/summary.rst",
            category="Summary",
        ),
        md=res("summary.md"),
        runs=res("runs.csv"),
        provenance=res("provenance.json"),
    log:
        logs("summary.log"),
    benchmark:
        bench("summary.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("summary"),
        second_judge=optional_input("second_judge"),
    shell:
        f"{ISAAC}.report"
        " summary --scores {input.scores:q} --per-prompt {input.per_prompt:q}"
        " --targets {input.targets:q} --judge {input.judge:q}"
        " --second-judge={params.second_judge:q} --config {params.config:q}"
        " --provenance {output.provenance:q}"
        " --runs {output.runs:q} --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


rule report_figures:
    input:
        summary=res("summary.csv"),
    output:
        safety_distinct=report(
            res("figures", "safety_vs_distinct2.png"),
            caption="../config/report/safety_vs_distinct2.rst",
            category="Evaluation",
        ),
        oracle_model=report(
            res("figures", "oracle_vs_model_safety.png"),
            caption="../config/report/oracle_vs_model_safety.rst",
            category="Evaluation",
        ),
        safety_relevance=report(
            res("figures", "safety_vs_relevance.png"),
            caption="../config/report/safety_vs_relevance.rst",
            category="Evaluation",
        ),
    log:
        logs("report_figures.log"),
    benchmark:
        bench("report_figures.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("report"),
    shell:
        f"{ISAAC}.report"
        " figures --summary {input.summary:q} --config {params.config:q}"
        " --safety-vs-distinct2 {output.safety_distinct:q}"
        " --oracle-vs-model-safety {output.oracle_model:q}"
        " --safety-vs-relevance {output.safety_relevance:q} > {log:q} 2>&1"


# Every figure and the summary from cached results: `snakemake --cores 2 figures`.
rule figures:
    input:
        figure_outputs(),
        res("summary.csv"),
        res("summary.md"),
