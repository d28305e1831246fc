rule generate:
    input:
        model=res("models", RUN),
        corpus=res("corpus.parquet"),
    output:
        ensure(res("generations", f"{RUN}.parquet"), non_empty=True),
    log:
        f"{LOGS}/generate/{RUN}.log",
    benchmark:
        f"{BENCHMARKS}/generate/{RUN}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000)),
        runtime=by_generator(20, 120),
        gpu=by_generator(0, 1),
    params:
        generate=config_json("generate"),
    shell:
        f"{ISAAC}.generate"
        " --model {input.model:q} --corpus {input.corpus:q}"
        " --generate {params.generate:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


# judge.from set: the judge folder is copied from another (labelled) corpus's results.
rule judge:
    input:
        corpus=res("corpus.parquet"),
        source=config["judge"]["from"] or [],
    output:
        directory(res("judge")),
    log:
        f"{LOGS}/judge.log",
    benchmark:
        f"{BENCHMARKS}/judge.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        features=config["judge"]["features"],
        source=config["judge"]["from"] or "",
    shell:
        f"{ISAAC}.judge"
        " --corpus {input.corpus:q} --features {params.features:q}"
        " --from={params.source:q} --out {output:q} > {log:q} 2>&1"


rule score:
    input:
        generations=res("generations", f"{RUN}.parquet"),
        judge=res("judge"),
        model=res("models", RUN),
    output:
        ensure(res("scores", f"{RUN}.json"), non_empty=True),
    log:
        f"{LOGS}/score/{RUN}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000)),
        runtime=by_generator(20, 60),
    params:
        run=RUN,
        max_length=config["train"]["max_length"],
    shell:
        f"{ISAAC}.score"
        " --generations {input.generations:q} --judge {input.judge:q}"
        " --model {input.model:q} --run {params.run:q} --max-length {params.max_length:q}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
