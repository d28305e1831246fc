"""Input functions of rules/train.smk."""

ROUNDS = config["train"]["rounds"]
# One process per GPU (train.processes): a train job asks for that many GPUs, and threads and
# memory per process (data-parallel processes each hold a copy of the model).
PROCESSES = config["train"]["processes"]


def round_targets(round_):
    """Input function: the targets round `round_` of the run trains on (a fresh draw per round)."""

    def targets(wildcards):
        seed = round_seed(int(wildcards.seed), int(round_ or wildcards.round))
        run = RUN.format(
            method=wildcards.method, tau=wildcards.tau, m=wildcards.m, seed=seed
        )
        return res("targets", f"{run}.parquet")

    return targets


def previous_round(round_):
    """Input function: the model of the round before `round_` (none for round 1)."""

    def init(wildcards):
        current = int(round_ or wildcards.round)
        if current == 1:
            return []
        return res("rounds", RUN.format(**wildcards), f"round{current - 1}")

    return init


def base_inputs():
    """The corpus tokenizer (tiny-gpt2) or the de-quantised SmolLM2 folder a job starts from."""
    return {
        "tokenizer": res("generator_tokenizer") if TINY_GENERATOR else [],
        "base": (
            res("generator_base") if config["generator"]["model"] == "smollm2" else []
        ),
    }


def base_model(round_):
    """The local generator folder (generator.model a path) that a run's first round starts from
    (later rounds start from the round before): an input function, or none for a named
    generator."""
    folder = local_model_folder("generator.model")
    if not folder:
        return []
    return lambda wildcards: [folder] if int(round_ or wildcards.round) == 1 else []
