"""The paper's experiments as targets: each point is this workflow as a module under its own
config (the current one, the axis keys and corpus.name replaced), and one rule per experiment
tabulates its points (isaac.experiments)."""


include: "helpers/experiments.smk"


# The points' modules run the Snakefile that includes this file: only the main workflow
# declares points, so a point declares none of its own.
if workflow.modifier.is_main_snakefile():
    for point in [p for points in EXPERIMENT_POINTS.values() for p in points]:
        point_module = point.module
        point_rules = f"{point.module}_"

        module:
            name: point_module
            snakefile:
                "../Snakefile"
            config:
                point_config(config, point)

        use rule * from point_module as point_rules*


# `snakemake --cores 2 pollution_table --configfile config/demo.yaml config/pollution.yaml`
rule pollution_table:
    input:
        runs=lambda wildcards: [
            point_res(p, "runs.csv") for p in points_of("pollution", "rates")
        ],
    output:
        csv=res("experiments", "pollution.csv"),
        md=res("experiments", "pollution.md"),
    log:
        logs("experiments", "pollution.log"),
    benchmark:
        bench("experiments", "pollution.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("experiments", "pollution"),
    shell:
        f"{ISAAC}.experiments"
        " pollution --runs {input.runs:q} --config {params.config:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


# `snakemake --cores 2 tempering_table --configfile config/demo.yaml config/tempering.yaml`
rule tempering_table:
    input:
        summaries=lambda wildcards: [
            point_res(p, "summary.csv") for p in points_of("tempering", "rounds")
        ],
    output:
        csv=res("experiments", "tempering.csv"),
        md=res("experiments", "tempering.md"),
    log:
        logs("experiments", "tempering.log"),
    benchmark:
        bench("experiments", "tempering.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("experiments", "tempering"),
    shell:
        f"{ISAAC}.experiments"
        " tempering --summaries {input.summaries:q} --config {params.config:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


# Head group against the rest, one point per generations file (corpus.format
# diasafety_generations, assess.pool prompt, judge.from a labelled corpus's judges).
rule head_safety_table:
    input:
        results=lambda wildcards: [
            point_res(p, "head_safety.json")
            for p in points_of("head_safety", "generations")
        ],
        groups=lambda wildcards: [
            point_res(p, "groups", f"{config['assess']['assessor']}.json")
            for p in points_of("head_safety", "generations")
        ],
    output:
        csv=res("experiments", "head_safety.csv"),
        md=res("experiments", "head_safety.md"),
    log:
        logs("experiments", "head_safety.log"),
    benchmark:
        bench("experiments", "head_safety.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("experiments", "head_safety"),
    shell:
        f"{ISAAC}.experiments"
        " head_safety --results {input.results:q} --groups {input.groups:q}"
        " --config {params.config:q} --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


# Sampled targets only: nothing is trained, generated or scored.
rule encoders_table:
    input:
        unpack(encoders_inputs),
    output:
        csv=res("experiments", "encoders.csv"),
        md=res("experiments", "encoders.md"),
        figure=res("experiments", "eps_sensitivity.png"),
    log:
        logs("experiments", "encoders.log"),
    benchmark:
        bench("experiments", "encoders.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("experiments", "encoders"),
        report=stage_config("report"),
    shell:
        f"{ISAAC}.experiments"
        " encoders --groups {input.groups:q} --targets {input.targets:q}"
        " --config {params.config:q} --report {params.report:q} --figure {output.figure:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


# The encoder as a reported axis: this corpus's summary (its own encoder, every method) beside
# the trained methods of one point per other encoder, each paired with this corpus's raw runs.
rule trained_encoders_table:
    input:
        unpack(trained_encoders_inputs),
    output:
        csv=res("experiments", "trained_encoders.csv"),
        md=res("experiments", "trained_encoders.md"),
    log:
        logs("experiments", "trained_encoders.log"),
    benchmark:
        bench("experiments", "trained_encoders.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(1000),
        runtime=10,
    params:
        config=stage_config("experiments", "trained_encoders"),
        summary=stage_config("summary", "trained_encoders"),
    shell:
        f"{ISAAC}.experiments"
        " trained_encoders --summaries {input.summaries:q} --groups {input.groups:q}"
        " --raw-scores {input.raw_scores:q} --raw-per-prompt {input.raw_per_prompt:q}"
        " --scores {input.scores:q} --per-prompt {input.per_prompt:q}"
        " --config {params.config:q} --summary-config {params.summary:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
