"""Evaluation stages: generate on the test prompts, train (or copy) the judge, score each run."""


rule generate:
    input:
        model=res("models", RUN),
        corpus=res("corpus.parquet"),
    output:
        ensure(res("generations", f"{RUN}.parquet"), non_empty=True),
    log:
        logs("generate", f"{RUN}.log"),
    benchmark:
        bench("generate", f"{RUN}.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000)),
        runtime=by_generator(20, 120),
        gpu=by_generator(0, 1),
    params:
        config=section_json("generate"),
    shell:
        f"{ISAAC}.generate"
        " --model {input.model:q} --corpus {input.corpus:q}"
        " --config {params.config:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


# judge.from set: the judge folder is copied from another (labelled) corpus's results.
rule judge:
    input:
        corpus=res("corpus.parquet"),
        source=config["judge"]["from"] or [],
    output:
        directory(res("judge")),
    log:
        logs("judge.log"),
    benchmark:
        bench("judge.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        config=config_json({"features": config["judge"]["features"]}),
        source=optional_input("source"),
    shell:
        f"{ISAAC}.judge"
        " --corpus {input.corpus:q} --from={params.source:q}"
        " --config {params.config:q} --out {output:q} > {log:q} 2>&1"


rule score:
    input:
        generations=res("generations", f"{RUN}.parquet"),
        judge=res("judge"),
        model=res("models", RUN),
    output:
        ensure(res("scores", f"{RUN}.json"), non_empty=True),
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
        config=config_json({"max_length": config["train"]["max_length"]}),
    shell:
        f"{ISAAC}.score"
        " --generations {input.generations:q} --judge {input.judge:q}"
        " --model {input.model:q} --method {wildcards.method:q} --tau {wildcards.tau:q}"
        " --m {wildcards.m:q} --seed {wildcards.seed:q} --config {params.config:q}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
