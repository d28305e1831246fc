"""Input functions, config slice and command of rules/train.smk."""

STAGES = config["train"]["stages"]

# One command for a run's final model (rule train) and its earlier stages (rule train_stage).
TRAIN_COMMAND = (
    f"{ISAAC}.train"
    " --targets {input.targets:q} --tokenizer={input.tokenizer:q} --base={input.base:q}"
    " --init={params.init:q} --seed {wildcards.seed:q} --config {params.config:q}"
    " --threads {threads} --checkpoints {params.checkpoints:q} --out {output:q} > {log:q} 2>&1"
)


def train_slice():
    """What a training job reads: the generator, and the train section without the stage
    count (it decides which jobs exist, not what one job does)."""
    train = {k: v for k, v in config["train"].items() if k != "stages"}
    return {"generator": config["generator"], "train": train}


def stage_targets(stage):
    """Input function: the targets stage `stage` of the run trains on (a fresh draw per stage)."""

    def targets(wildcards):
        seed = stage_seed(int(wildcards.seed), int(stage or wildcards.stage))
        return res(
            "targets",
            wildcards.method,
            f"tau{wildcards.tau}-m{wildcards.m}-seed{seed}.parquet",
        )

    return targets


def previous_stage(stage):
    """Input function: the model of the stage before `stage` (none for stage 1)."""

    def init(wildcards):
        current = int(stage or wildcards.stage)
        if current == 1:
            return []
        run = RUN.format(
            method=wildcards.method,
            tau=wildcards.tau,
            m=wildcards.m,
            seed=wildcards.seed,
        )
        return res("stages", run, f"stage{current - 1}")

    return init


def base_inputs():
    """The corpus tokenizer (tiny-gpt2) or the de-quantised SmolLM2 folder a job starts from."""
    return {
        "tokenizer": res("generator") if TINY_GENERATOR else [],
        "base": (
            res("generator_base") if config["generator"]["model"] == "smollm2" else []
        ),
    }
