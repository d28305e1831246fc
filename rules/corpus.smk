"""Corpus stages: ingest, tokenise, n-gram tables, leave-one-out likelihood, long-tail figures."""


rule ingest:
    input:
        data=corpus_input_files(),
    output:
        corpus=ensure(res("corpus.parquet"), non_empty=True),
    log:
        f"{LOGS}/ingest/ingest.log",
    benchmark:
        f"{BENCHMARKS}/ingest.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        **ingest_settings(),
    shell:
        f"{ISAAC}.ingest"
        " --format {params.format:q} --path={params.path:q}"
        " --fields-json {params.fields:q} --default-split {params.default_split:q}"
        " --empty-responses {params.empty_responses:q} --demo-json {params.demo:q}"
        " --out {output.corpus:q} > {log:q} 2>&1"


rule tokenize:
    input:
        corpus=res("corpus.parquet"),
    output:
        tokens=ensure(res("tokens.parquet"), non_empty=True),
    log:
        f"{LOGS}/tokenize/tokenize.log",
    benchmark:
        f"{BENCHMARKS}/tokenize.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=30,
    params:
        tokenizer=config["tokenize"]["tokenizer"],
        lowercase=str(config["tokenize"]["lowercase"]).lower(),
        collapse_whitespace=str(config["tokenize"]["collapse_whitespace"]).lower(),
    shell:
        f"{ISAAC}.tokens"
        " --corpus {input.corpus:q} --tokenizer {params.tokenizer:q}"
        " --lowercase {params.lowercase:q}"
        " --collapse-whitespace {params.collapse_whitespace:q}"
        " --out {output.tokens:q} > {log:q} 2>&1"


rule ngrams:
    input:
        tokens=res("tokens.parquet"),
        corpus=res("corpus.parquet"),
    output:
        table=ensure(res("ngrams/n{n}.parquet"), non_empty=True),
    log:
        f"{LOGS}/ngrams/n{{n}}.log",
    benchmark:
        f"{BENCHMARKS}/ngrams/n{{n}}.tsv"
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
        f"{LOGS}/likelihood/likelihood.log",
    benchmark:
        f"{BENCHMARKS}/likelihood.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(8000),
        runtime=30,
    params:
        order=config["likelihood"]["order"],
    shell:
        f"{ISAAC}.likelihood"
        " --corpus {input.corpus:q} --tokens {input.tokens:q}"
        " --order {params.order:q} --out {output.table:q} > {log:q} 2>&1"


rule longtail_responses:
    input:
        corpus=res("corpus.parquet"),
    output:
        figure=report(
            res("figures/longtail_responses.png"),
            caption="../config/report/longtail_responses.rst",
            category="Corpus",
        ),
    log:
        f"{LOGS}/figures/longtail_responses.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        dpi=config["report"]["dpi"],
    shell:
        f"{ISAAC}.longtail"
        " responses --corpus {input.corpus:q} --dpi {params.dpi:q}"
        " --out {output.figure:q} > {log:q} 2>&1"


rule longtail_ngrams:
    input:
        tables=ngram_tables(),
    output:
        figure=report(
            res("figures/longtail_ngrams.png"),
            caption="../config/report/longtail_ngrams.rst",
            category="Corpus",
        ),
    log:
        f"{LOGS}/figures/longtail_ngrams.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        dpi=config["report"]["dpi"],
    shell:
        f"{ISAAC}.longtail"
        " ngrams --tables {input.tables:q} --dpi {params.dpi:q}"
        " --out {output.figure:q} > {log:q} 2>&1"
