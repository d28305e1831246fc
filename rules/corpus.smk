"""Corpus stages: ingest, tokenise, n-gram tables, leave-one-out likelihood, long-tail figures."""


include: "helpers/corpus.smk"


rule ingest:
    input:
        data=corpus_input_files(),
    output:
        corpus=ensure(res("corpus.parquet"), non_empty=True),
    log:
        logs("ingest", "ingest.log"),
    benchmark:
        bench("ingest.tsv")
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        **fingerprint("data", corpus_input_files()),
        config=stage_config("corpus"),
    shell:
        f"{ISAAC}.ingest"
        " --config {params.config:q} --out {output.corpus:q} > {log:q} 2>&1"


rule tokenize:
    input:
        corpus=res("corpus.parquet"),
    output:
        tokens=ensure(res("tokens.parquet"), non_empty=True),
    log:
        logs("tokenize", "tokenize.log"),
    benchmark:
        bench("tokenize.tsv")
    conda:
        "../envs/corpus.yaml"
    threads: 4
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        config=stage_config("tokenize"),
    shell:
        f"{ISAAC}.tokenize"
        " --corpus {input.corpus:q} --config {params.config:q} --threads {threads}"
        " --out {output.tokens:q} > {log:q} 2>&1"


rule ngrams:
    input:
        tokens=res("tokens.parquet"),
        corpus=res("corpus.parquet"),
    output:
        table=ensure(res("ngrams", "n{n}.parquet"), non_empty=True),
    log:
        logs("ngrams", "n{n}.log"),
    benchmark:
        bench("ngrams", "n{n}.tsv")
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(6000),
        runtime=30,
    shell:
        f"{ISAAC}.ngrams"
        " --tokens {input.tokens:q} --corpus {input.corpus:q}"
        " --n {wildcards.n:q} --out {output.table:q} > {log:q} 2>&1"


rule likelihood:
    input:
        tokens=res("tokens.parquet"),
        corpus=res("corpus.parquet"),
    output:
        table=ensure(res("likelihood.parquet"), non_empty=True),
    log:
        logs("likelihood", "likelihood.log"),
    benchmark:
        bench("likelihood.tsv")
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(8000),
        runtime=30,
    params:
        config=stage_config("likelihood"),
    shell:
        f"{ISAAC}.likelihood"
        " --corpus {input.corpus:q} --tokens {input.tokens:q}"
        " --config {params.config:q} --out {output.table:q} > {log:q} 2>&1"


rule longtail_responses:
    input:
        corpus=res("corpus.parquet"),
    output:
        figure=report(
            res("figures", "longtail_responses.png"),
            caption="../config/report/longtail_responses.rst",
            category="Corpus",
        ),
    log:
        logs("figures", "longtail_responses.log"),
    benchmark:
        bench("figures", "longtail_responses.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("report"),
    shell:
        f"{ISAAC}.longtail"
        " responses --corpus {input.corpus:q} --config {params.config:q}"
        " --out {output.figure:q} > {log:q} 2>&1"


rule longtail_ngrams:
    input:
        tables=ngram_tables(),
    output:
        figure=report(
            res("figures", "longtail_ngrams.png"),
            caption="../config/report/longtail_ngrams.rst",
            category="Corpus",
        ),
    log:
        logs("figures", "longtail_ngrams.log"),
    benchmark:
        bench("figures", "longtail_ngrams.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("report"),
    shell:
        f"{ISAAC}.longtail"
        " ngrams --tables {input.tables:q} --config {params.config:q}"
        " --out {output.figure:q} > {log:q} 2>&1"
