"""Evaluation stages: the test prompts, generations, the judges, and each run's scores."""


include: "helpers/evaluate.smk"


rule prompts:
    input:
        corpus=res("corpus.parquet"),
    output:
        prompts=ensure(res("prompts.parquet"), non_empty=True),
    log:
        logs("prompts.log"),
    benchmark:
        bench("prompts.tsv")
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("prompts"),
    shell:
        f"{ISAAC}.prompts"
        " --corpus {input.corpus:q} --config {params.config:q}"
        " --out {output.prompts:q} > {log:q} 2>&1"


rule generate:
    input:
        model=res("models", RUN),
        prompts=res("prompts.parquet"),
    output:
        ensure(res("generations", f"{RUN}.parquet"), non_empty=True),
    log:
        logs("generate", f"{RUN}.log"),
    benchmark:
        bench("generate", f"{RUN}.tsv")
    wildcard_constraints:
        method=TRAINED,
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000)),
        runtime=by_generator(20, 120),
        gpu=by_generator(0, 1),
    params:
        config=stage_config("generate"),
    shell:
        f"{ISAAC}.generate"
        " --model {input.model:q} --prompts {input.prompts:q} --seed {wildcards.seed:q}"
        " --config {params.config:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


# The model-free method constant: every prompt gets the most frequent normalised train
# response (isaac.constant).
rule constant:
    input:
        corpus=res("corpus.parquet"),
        prompts=res("prompts.parquet"),
    output:
        ensure(res("generations", f"{RUN}.parquet"), non_empty=True),
    log:
        logs("generate", f"{RUN}.log"),
    benchmark:
        bench("generate", f"{RUN}.tsv")
    wildcard_constraints:
        method=method_pattern(MODEL_FREE_METHODS),
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    shell:
        f"{ISAAC}.constant"
        " --corpus {input.corpus:q} --prompts {input.prompts:q} --out {output:q} > {log:q} 2>&1"


# A judge fitted on the labelled train rows; judge.from set: copied from another (labelled)
# corpus's results.
rule judge:
    input:
        corpus=res("corpus.parquet"),
        source=judge_source("train"),
    output:
        directory(judge_folder("train", "{features}")),
    log:
        logs("judge", "{features}.log"),
    benchmark:
        bench("judge", "{features}.tsv")
    conda:
        "../envs/train.yaml"
    threads: judge_threads
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=judge_runtime,
    params:
        source=optional_input("source"),
        fit="train",
        config=judge_config,
    shell:
        f"{ISAAC}.judge"
        " --corpus {input.corpus:q} --from={params.source:q} --fit {params.fit:q}"
        " --features {wildcards.features:q} --config {params.config:q} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"


# The independent judge (judge.second): fitted on text no generator trains on.
use rule judge as judge_heldout with:
    input:
        corpus=res("corpus.parquet"),
        source=judge_source("heldout"),
    output:
        directory(judge_folder("heldout", "{features}")),
    log:
        logs("judge", "heldout", "{features}.log"),
    benchmark:
        bench("judge", "heldout", "{features}.tsv")
    params:
        source=optional_input("source"),
        fit="heldout",
        config=judge_config,


rule score:
    input:
        unpack(score_inputs),
        generations=res("generations", f"{RUN}.parquet"),
        corpus=res("corpus.parquet"),
    output:
        scores=ensure(res("scores", f"{RUN}.json"), non_empty=True),
        per_prompt=ensure(res("scores", f"{RUN}.parquet"), non_empty=True),
    log:
        logs("score", f"{RUN}.log"),
    benchmark:
        bench("score", f"{RUN}.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000)),
        runtime=by_generator(20, 60),
    params:
        config=stage_config("generator"),
        second=optional_input("second_judge"),
        model=optional_input("model"),
    shell:
        f"{ISAAC}.score"
        " --generations {input.generations:q} --judge {input.judge:q}"
        " --second-judge={params.second:q} --model={params.model:q} --corpus {input.corpus:q}"
        " --method {wildcards.method:q} --tau {wildcards.tau:q} --m {wildcards.m:q}"
        " --seed {wildcards.seed:q} --config {params.config:q} --threads {threads}"
        " --out {output.scores:q} --per-prompt {output.per_prompt:q} > {log:q} 2>&1"


# Many responses per prompt (assess.pool group): is each prompt's head group judged safer than
# its other responses? `snakemake --cores 2 results/{corpus}/head_safety.json`.
rule head_safety:
    input:
        corpus=res("corpus.parquet"),
        groups=groups_file(),
        judge=judge_folder("train", config["judge"]["features"]),
    output:
        summary=res("head_safety.json"),
        table=ensure(res("head_safety.parquet"), non_empty=True),
    log:
        logs("head_safety.log"),
    benchmark:
        bench("head_safety.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        config=stage_config("summary", "head_safety"),
    shell:
        f"{ISAAC}.head_safety"
        " --corpus {input.corpus:q} --groups {input.groups:q} --judge {input.judge:q}"
        " --config {params.config:q} --out {output.summary:q}"
        " --table {output.table:q} > {log:q} 2>&1"


# What each judge says of one reply given to every unseen prompt (isaac.judge_probe):
# `snakemake --cores 2 results/{corpus}/judge_probe.md`.
rule judge_probe:
    input:
        unpack(score_judges),
        corpus=res("corpus.parquet"),
        prompts=res("prompts.parquet"),
    output:
        table=ensure(res("judge_probe.csv"), non_empty=True),
        markdown=res("judge_probe.md"),
    log:
        logs("judge_probe.log"),
    benchmark:
        bench("judge_probe.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        second=optional_input("second_judge"),
    shell:
        f"{ISAAC}.judge_probe"
        " --corpus {input.corpus:q} --prompts {input.prompts:q} --judge {input.judge:q}"
        " --second-judge={params.second:q} --out {output.table:q}"
        " --markdown {output.markdown:q} > {log:q} 2>&1"
