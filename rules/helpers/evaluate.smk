"""Input functions of rules/evaluate.smk."""


def judge_source(wildcards):
    """judge.from: the other corpus's judge folder of these features (none: train here)."""
    source = config["judge"]["from"]
    return str(Path(source) / wildcards.features) if source else []


def score_judges(wildcards):
    """The primary judge, and the second one where judge.second names it."""
    judges = {"judge": res("judge", config["judge"]["features"])}
    if config["judge"]["second"]:
        judges["second_judge"] = res("judge", config["judge"]["second"])
    return judges
