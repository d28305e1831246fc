"""Input functions and config slices of rules/evaluate.smk."""


def prompts_slice():
    return {key: config["generate"][key] for key in ("prompts", "n_prompts")}


def generate_slice():
    keys = ("max_new_tokens", "do_sample", "temperature", "top_p", "batch_size")
    return {key: config["generate"][key] for key in keys}


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
