"""Input functions of rules/evaluate.smk."""


def judge_source(wildcards):
    """judge.from: the other corpus's judge folder of these features (none: train here)."""
    source = config["judge"]["from"]
    return str(Path(source) / wildcards.features) if source else []


def score_inputs(wildcards):
    """The primary judge, the second one where judge.second names it, and the run's model
    (perplexities) unless its method has none."""
    inputs = {"judge": res("judge", config["judge"]["features"])}
    if config["judge"]["second"]:
        inputs["second_judge"] = res("judge", config["judge"]["second"])
    if wildcards.method not in MODEL_FREE_METHODS:
        inputs["model"] = res("models", RUN.format(**wildcards))
    return inputs
