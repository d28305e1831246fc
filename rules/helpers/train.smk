"""Input functions of rules/train.smk."""

STAGES = config["train"]["stages"]


def stage_targets(stage):
    """Input function: the targets stage `stage` of the run trains on (a fresh draw per stage)."""

    def targets(wildcards):
        seed = stage_seed(int(wildcards.seed), int(stage or wildcards.stage))
        run = RUN.format(
            method=wildcards.method, tau=wildcards.tau, m=wildcards.m, seed=seed
        )
        return res("targets", f"{run}.parquet")

    return targets


def previous_stage(stage):
    """Input function: the model of the stage before `stage` (none for stage 1)."""

    def init(wildcards):
        current = int(stage or wildcards.stage)
        if current == 1:
            return []
        return res("stages", RUN.format(**wildcards), f"stage{current - 1}")

    return init


def base_inputs():
    """The corpus tokenizer (tiny-gpt2) or the de-quantised SmolLM2 folder a job starts from."""
    return {
        "tokenizer": res("generator_tokenizer") if TINY_GENERATOR else [],
        "base": (
            res("generator_base") if config["generator"]["model"] == "smollm2" else []
        ),
    }
