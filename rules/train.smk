"""Generator stages: the tiny generator's tokenizer, then one fine-tuning job per run."""


include: "helpers/train.smk"


rule generator_tokenizer:
    input:
        corpus=res("corpus.parquet"),
    output:
        directory(res("generator_tokenizer")),
    log:
        logs("generator_tokenizer.log"),
    benchmark:
        bench("generator_tokenizer.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(2000),
        runtime=20,
    params:
        config=stage_config("generator"),
    shell:
        f"{ISAAC}.generator_tokenizer"
        " --corpus {input.corpus:q} --config {params.config:q}"
        " --out {output:q} > {log:q} 2>&1"


rule generator_base:
    output:
        directory(res("generator_base")),
    log:
        logs("generator_base.log"),
    benchmark:
        bench("generator_base.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=grow_with_attempt(4000),
        runtime=20,
    shell:
        f"{ISAAC}.generator_base" " --out {output:q} > {log:q} 2>&1"


# Tempering: the earlier rounds of a run, round r on its own draw of targets (isaac.runs.round_seed).
# Checkpoints go to a sibling folder of the model (not an output), so they survive the removal
# of an incomplete output: re-running after a kill resumes from the last checkpoint.
rule train_round:
    input:
        **base_inputs(),
        targets=round_targets(None),
        init=previous_round(None),
    output:
        directory(res("rounds", RUN, "round{round}")),
    log:
        logs("train_round", RUN, "round{round}.log"),
    benchmark:
        bench("train_round", RUN, "round{round}.tsv")
    wildcard_constraints:
        method=SAMPLED,
    conda:
        "../envs/train.yaml"
    threads: by_generator(1, 4) * PROCESSES
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000) * PROCESSES),
        runtime=by_generator(30, 240),
        gpu=PROCESSES,
    params:
        **fingerprint("base_model", base_model(None)),
        config=stage_config("train"),
        generator=stage_config("generator"),
        checkpoints=res("checkpoints", "rounds", RUN, "round{round}"),
        tokenizer=optional_input("tokenizer"),
        base=optional_input("base"),
        init=optional_input("init"),
    shell:
        f"{ISAAC}.train"
        " --targets {input.targets:q} --tokenizer={params.tokenizer:q} --base={params.base:q}"
        " --init={params.init:q} --seed {wildcards.seed:q} --config {params.config:q}"
        " --generator {params.generator:q} --threads {threads}"
        " --checkpoints {params.checkpoints:q} --out {output:q} > {log:q} 2>&1"


# A run's model: its last round (train.rounds R; the only one when R = 1), trained from round
# R - 1. The test prompts are an input only so that a corpus without usable test prompts fails
# before training.
use rule train_round as train with:
    input:
        **base_inputs(),
        targets=round_targets(ROUNDS),
        init=previous_round(ROUNDS),
        prompts=res("prompts.parquet"),
    output:
        directory(res("models", RUN)),
    log:
        logs("train", f"{RUN}.log"),
    benchmark:
        bench("train", f"{RUN}.tsv")
    params:
        **fingerprint("base_model", base_model(ROUNDS)),
        config=stage_config("train"),
        generator=stage_config("generator"),
        checkpoints=res("checkpoints", RUN),
        tokenizer=optional_input("tokenizer"),
        base=optional_input("base"),
        init=optional_input("init"),


# A pair method's model: DPO (isaac.dpo) on its pairs, from the model of the raw run of the same
# m and seed (isaac.runs.DPO_START), with the train section's steps and optimizer.
rule train_dpo:
    input:
        pairs=res("pairs", f"{RUN}.parquet"),
        init=res("models", DPO_START, "tau1.0-m{m}-seed{seed}"),
        prompts=res("prompts.parquet"),
    output:
        directory(res("models", RUN)),
    log:
        logs("train", f"{RUN}.log"),
    benchmark:
        bench("train", f"{RUN}.tsv")
    wildcard_constraints:
        method=PAIRED,
    conda:
        "../envs/train.yaml"
    threads: by_generator(1, 4) * PROCESSES
    resources:
        mem_mb=grow_with_attempt(by_generator(4000, 16000) * PROCESSES),
        runtime=by_generator(30, 240),
        gpu=PROCESSES,
    params:
        config=stage_config("train"),
        dpo=stage_config("dpo"),
        generator=stage_config("generator"),
        checkpoints=res("checkpoints", RUN),
    shell:
        f"{ISAAC}.dpo"
        " --pairs {input.pairs:q} --init {input.init:q} --dpo {params.dpo:q}"
        " --seed {wildcards.seed:q} --config {params.config:q}"
        " --generator {params.generator:q} --threads {threads}"
        " --checkpoints {params.checkpoints:q} --out {output:q} > {log:q} 2>&1"
