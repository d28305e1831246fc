"""Sampling stages: embed, neighbours, assess the pools, sample targets, sampling figures."""


rule embed:
    input:
        corpus=res("corpus.parquet"),
    output:
        embeddings=ensure(embeddings_file(), non_empty=True),
    log:
        f"{LOGS}/embed/{encoder_name()}.log",
    benchmark:
        f"{BENCHMARKS}/embed/{encoder_name()}.tsv"
    conda:
        "../envs/sample.yaml"
    threads: 4
    resources:
        mem_mb=grow_with_attempt(6000),
        runtime=60,
    params:
        encoder=config["embed"]["encoder"],
        batch_size=config["embed"]["batch_size"],
        tfidf_components=config["embed"]["tfidf_components"],
    shell:
        f"{ISAAC}.embed"
        " --corpus {input.corpus:q} --encoder {params.encoder:q}"
        " --batch-size {params.batch_size:q}"
        " --tfidf-components {params.tfidf_components:q}"
        " --threads {threads} --out {output.embeddings:q} > {log:q} 2>&1"


rule neighbours:
    input:
        embeddings=embeddings_file(),
    output:
        neighbours=ensure(neighbours_file(), non_empty=True),
    log:
        f"{LOGS}/neighbours/{encoder_name()}-k{config['neighbours']['k']}.log",
    benchmark:
        f"{BENCHMARKS}/neighbours/{encoder_name()}-k{config['neighbours']['k']}.tsv"
    conda:
        "../envs/sample.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        k=config["neighbours"]["k"],
    shell:
        f"{ISAAC}.neighbours"
        " --embeddings {input.embeddings:q} --k {params.k:q}"
        " --out {output.neighbours:q} > {log:q} 2>&1"


rule assess:
    input:
        unpack(assess_inputs),
    output:
        groups=ensure(groups_file(), non_empty=True),
    log:
        f"{LOGS}/assess/{config['assess']['assessor']}.log",
    benchmark:
        f"{BENCHMARKS}/assess/{config['assess']['assessor']}.tsv"
    conda:
        "../envs/sample.yaml"
    threads: 2
    resources:
        mem_mb=grow_with_attempt(8000),
        runtime=30,
    params:
        **assess_settings(),
        neighbours=optional_input("neighbours"),
        embeddings=optional_input("embeddings"),
        likelihood=optional_input("likelihood"),
    shell:
        f"{ISAAC}.assess"
        " --corpus {input.corpus:q} --assessor {params.assessor:q}"
        " --pool {params.pool:q} --neighbours={params.neighbours:q}"
        " --embeddings={params.embeddings:q} --likelihood={params.likelihood:q}"
        " --eps={params.eps:q} --fuzzy-threshold={params.fuzzy_threshold:q}"
        " --threads {threads} --out {output.groups:q} > {log:q} 2>&1"


# One job per run id of sweep_runs() (trained) and tau_figure_runs() (sampled only).
rule sample:
    input:
        unpack(sample_inputs),
    output:
        targets=ensure(res("targets", f"{RUN}.parquet"), non_empty=True),
        stats=res("targets", f"{RUN}.json"),
    log:
        f"{LOGS}/sample/{RUN}.log",
    benchmark:
        f"{BENCHMARKS}/sample/{RUN}.tsv"
    conda:
        "../envs/sample.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        groups=optional_input("groups"),
        top_k=sample_setting("top_k"),
        head_shortcut=sample_setting("head_shortcut"),
        assessor=sample_setting("assessor"),
        encoder=sample_setting("encoder"),
        eps=sample_setting("eps"),
        pool=sample_setting("pool"),
        k=sample_setting("k"),
    shell:
        f"{ISAAC}.sample"
        " --corpus {input.corpus:q} --groups={params.groups:q}"
        " --method {wildcards.method:q} --tau {wildcards.tau:q} --m {wildcards.m:q}"
        " --seed {wildcards.seed:q} --top-k={params.top_k:q}"
        " --head-shortcut={params.head_shortcut:q} --assessor={params.assessor:q}"
        " --encoder={params.encoder:q} --eps={params.eps:q} --pool={params.pool:q}"
        " --k={params.k:q} --out {output.targets:q} --stats {output.stats:q}"
        " > {log:q} 2>&1"


rule sample_all:
    default_target: False
    input:
        [res("targets", f"{run}.parquet") for run in sweep_runs()],
        tau_figure_stats(),


rule group_sizes:
    input:
        groups=groups_file(),
    output:
        figure=report(
            res("figures", "group_sizes.png"),
            caption="../config/report/group_sizes.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/figures/group_sizes.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        dpi=config["report"]["dpi"],
        title=f"{config['assess']['assessor']} groups, {encoder_name()} embeddings",
    shell:
        f"{ISAAC}.sample_figures"
        " group-sizes --groups {input.groups:q}"
        " --title {params.title:q} --dpi {params.dpi:q} --out {output.figure:q}"
        " > {log:q} 2>&1"


rule oracle_safe_rate_vs_tau:
    input:
        stats=tau_figure_stats(),
    output:
        figure=report(
            res("figures", "oracle_safe_rate_vs_tau.png"),
            caption="../config/report/oracle_safe_rate_vs_tau.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/figures/oracle_safe_rate_vs_tau.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        dpi=config["report"]["dpi"],
    shell:
        f"{ISAAC}.sample_figures"
        " oracle-vs-tau --stats {input.stats:q}"
        " --dpi {params.dpi:q} --out {output.figure:q} > {log:q} 2>&1"
