"""Sampling stages: embed, neighbours, assess the pools, sample targets, sampling figures."""


include: "helpers/sample.smk"


rule encoder_model2vec:
    output:
        directory(res("encoders", "model2vec")),
    log:
        logs("encoder_model2vec.log"),
    benchmark:
        bench("encoder_model2vec.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 2
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        config=stage_config("embed", "encoder_model2vec"),
    shell:
        f"{ISAAC}.encoder_model2vec"
        " --config {params.config:q} --out {output:q} > {log:q} 2>&1"


# Unsharded (embed.shards 1, or tfidf): embed encodes every text. Sharded: one embed_shard job
# per shard, and embed gathers their files into the same bytes.
rule embed_shard:
    input:
        corpus=res("corpus.parquet"),
        model=encoder_folder(),
    output:
        shard=temp(embed_shard_file("{shard}")),
    log:
        logs("embed", f"{encoder_name()}-{{shard}}-of-{embed_shards()}.log"),
    benchmark:
        bench("embed", f"{encoder_name()}-{{shard}}-of-{embed_shards()}.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 4
    resources:
        mem_mb=grow_with_attempt(6000),
        runtime=60,
    params:
        **fingerprint("encoder", encoder_files("embed_shard")),
        config=stage_config("embed"),
        model=optional_input("model"),
        shards=embed_shards(),
    shell:
        f"{ISAAC}.embed"
        " --corpus {input.corpus:q} --model={params.model:q} --config {params.config:q}"
        " --threads {threads} --shard {wildcards.shard:q} --shards {params.shards:q}"
        " --out {output.shard:q} > {log:q} 2>&1"


rule embed:
    input:
        unpack(embed_inputs),
    output:
        embeddings=ensure(embeddings_file(), non_empty=True),
    log:
        logs("embed", f"{encoder_name()}.log"),
    benchmark:
        bench("embed", f"{encoder_name()}.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 1 if embed_shards() > 1 else 4  # gathering needs one
    resources:
        mem_mb=grow_with_attempt(6000),
        runtime=60,
    params:
        **fingerprint("encoder", encoder_files("embed")),
        config=stage_config("embed"),
        model=optional_input("model"),
        shards=lambda wildcards, input: input.get("shards", []),
    shell:
        f"{ISAAC}.embed"
        " --corpus {input.corpus:q} --model={params.model:q} --config {params.config:q}"
        " --threads {threads} --gather {params.shards:q}"
        " --out {output.embeddings:q} > {log:q} 2>&1"


rule neighbours:
    input:
        embeddings=embeddings_file(),
    output:
        neighbours=ensure(neighbours_file(), non_empty=True),
    log:
        logs("neighbours", f"{neighbours_name()}.log"),
    benchmark:
        bench("neighbours", f"{neighbours_name()}.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 2
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        config=stage_config("neighbours"),
    shell:
        f"{ISAAC}.neighbours"
        " --embeddings {input.embeddings:q} --config {params.config:q}"
        " --threads {threads} --out {output.neighbours:q} > {log:q} 2>&1"


rule assess:
    input:
        unpack(assess_inputs),
    output:
        groups=ensure(groups_file(), non_empty=True),
        stats=groups_stats_file(),
    log:
        logs("assess", f"{config['assess']['assessor']}.log"),
    benchmark:
        bench("assess", f"{config['assess']['assessor']}.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 2
    resources:
        mem_mb=grow_with_attempt(8000),
        runtime=30,
    params:
        config=stage_config("assess"),
        neighbours=optional_input("neighbours"),
        embeddings=optional_input("embeddings"),
        likelihood=optional_input("likelihood"),
    shell:
        f"{ISAAC}.assess"
        " --corpus {input.corpus:q} --neighbours={params.neighbours:q}"
        " --embeddings={params.embeddings:q} --likelihood={params.likelihood:q}"
        " --config {params.config:q} --threads {threads}"
        " --out {output.groups:q} --stats {output.stats:q} > {log:q} 2>&1"


# Method global: one pool of every train row, grouped once by the configured assessor at the
# eps the pools' groups used (no neighbour search).
rule assess_global:
    input:
        unpack(assess_global_inputs),
    output:
        groups=ensure(global_groups_file(), non_empty=True),
        stats=global_groups_stats_file(),
    log:
        logs("assess", f"{config['assess']['assessor']}-global.log"),
    benchmark:
        bench("assess", f"{config['assess']['assessor']}-global.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 2
    resources:
        mem_mb=grow_with_attempt(8000),
        runtime=30,
    params:
        config=stage_config("assess", "global"),
        embeddings=optional_input("embeddings"),
        likelihood=optional_input("likelihood"),
    shell:
        f"{ISAAC}.assess"
        " --corpus {input.corpus:q} --global-pool {input.groups_stats:q}"
        " --embeddings={params.embeddings:q} --likelihood={params.likelihood:q}"
        " --config {params.config:q} --threads {threads}"
        " --out {output.groups:q} --stats {output.stats:q} > {log:q} 2>&1"


# One job per run id of sweep_runs() (trained) and of tau_figure_stats() (sampled only).
rule sample:
    input:
        unpack(sample_inputs),
    output:
        targets=ensure(res("targets", f"{RUN}.parquet"), non_empty=True),
        stats=res("targets", f"{RUN}.json"),
    log:
        logs("sample", f"{RUN}.log"),
    benchmark:
        bench("sample", f"{RUN}.tsv")
    wildcard_constraints:
        method=SAMPLED,
    conda:
        "../envs/sample.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        groups=optional_input("groups"),
        groups_stats=optional_input("groups_stats"),
        config=lambda wildcards: stage_config("sample", wildcards.method),
    shell:
        f"{ISAAC}.sample"
        " --corpus {input.corpus:q} --groups={params.groups:q}"
        " --groups-stats={params.groups_stats:q}"
        " --method {wildcards.method:q} --tau {wildcards.tau:q} --m {wildcards.m:q}"
        " --seed {wildcards.seed:q} --config {params.config:q}"
        " --out {output.targets:q} --stats {output.stats:q} > {log:q} 2>&1"


rule sample_all:
    default_target: False
    input:
        [
            res("targets", f"{run}.parquet")
            for run in sweep_runs()
            if run_method(run) in SAMPLED_METHODS
        ],
        tau_figure_stats(),


# Preference pairs (isaac.pairs): one job per pair run of pair_runs(), and their table.
rule pairs:
    input:
        corpus=res("corpus.parquet"),
        groups=groups_file(),
        groups_stats=groups_stats_file(),
    output:
        pairs=ensure(res("pairs", f"{RUN}.parquet"), non_empty=True),
        stats=res("pairs", f"{RUN}.json"),
    log:
        logs("pairs", f"{RUN}.log"),
    benchmark:
        bench("pairs", f"{RUN}.tsv")
    wildcard_constraints:
        method=PAIRED,
    conda:
        "../envs/sample.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    params:
        config=lambda wildcards: stage_config("sample", PAIR_METHODS[wildcards.method]),
    shell:
        f"{ISAAC}.pairs"
        " --corpus {input.corpus:q} --groups {input.groups:q}"
        " --groups-stats {input.groups_stats:q}"
        " --method {wildcards.method:q} --tau {wildcards.tau:q} --m {wildcards.m:q}"
        " --seed {wildcards.seed:q} --config {params.config:q}"
        " --out {output.pairs:q} --stats {output.stats:q} > {log:q} 2>&1"


rule pairs_summary:
    input:
        stats=[res("pairs", f"{run}.json") for run in pair_runs()],
    output:
        table=ensure(res("pairs.csv"), non_empty=True),
    log:
        logs("pairs_summary.log"),
    benchmark:
        bench("pairs_summary.tsv")
    conda:
        "../envs/sample.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    shell:
        f"{ISAAC}.pairs_summary"
        " {input.stats:q} --csv {output.table:q} > {log:q} 2>&1"


rule group_sizes:
    input:
        groups=groups_file(),
        stats=groups_stats_file(),
    output:
        figure=report(
            res("figures", "group_sizes.png"),
            caption="../config/report/group_sizes.rst",
            category="Sampling",
        ),
    log:
        logs("figures", "group_sizes.log"),
    benchmark:
        bench("figures", "group_sizes.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("report"),
    shell:
        f"{ISAAC}.sample_figures"
        " group-sizes --groups {input.groups:q} --groups-stats {input.stats:q}"
        " --config {params.config:q} --out {output.figure:q} > {log:q} 2>&1"


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
        logs("figures", "oracle_safe_rate_vs_tau.log"),
    benchmark:
        bench("figures", "oracle_safe_rate_vs_tau.tsv")
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=10,
    params:
        config=stage_config("report"),
    shell:
        f"{ISAAC}.sample_figures"
        " oracle-vs-tau --stats {input.stats:q}"
        " --config {params.config:q} --out {output.figure:q} > {log:q} 2>&1"
