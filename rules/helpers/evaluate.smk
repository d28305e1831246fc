"""Input functions of rules/evaluate.smk."""

# Where each fit of the judge stage (isaac.judge --fit) keeps its folders under judge/.
JUDGE_FOLDERS = {"train": (), "heldout": ("heldout",)}


def judge_folder(fit, features):
    """results/{corpus}/judge/[heldout/]{features}: a judge fitted on train rows, or the
    independent (held-out) one."""
    return res("judge", *JUDGE_FOLDERS[fit], features)


def judge_source(fit):
    """An input function: with judge.from, the other corpus's judge folder of this fit and
    these features (none: fit here)."""

    def source(wildcards):
        root = config["judge"]["from"]
        return str(Path(root, *JUDGE_FOLDERS[fit], wildcards.features)) if root else []

    return source


def judge_config(wildcards):
    """The judge section as the job of these features reads it."""
    return stage_config("judge", wildcards.features)


def judge_runtime(wildcards):
    """Minutes: fine-tuning the cross-encoder takes far longer than a logistic regression."""
    return 120 if wildcards.features == "cross-minilm" else 30


def judge_threads(wildcards):
    """Fine-tuning the cross-encoder uses several cores (capped by --cores); a logistic
    regression one."""
    return 4 if wildcards.features == "cross-minilm" else 1


def second_judge():
    """The independent judge's folder where judge.second names its features (else none)."""
    second = config["judge"]["second"]
    return judge_folder("heldout", second) if second else []


def score_judges(wildcards):
    """The primary judge, and the independent one where judge.second names it."""
    judges = {"judge": judge_folder("train", config["judge"]["features"])}
    if config["judge"]["second"]:
        judges["second_judge"] = second_judge()
    return judges


def score_inputs(wildcards):
    """The judges, and the run's model (perplexities) unless its method has none."""
    inputs = score_judges(wildcards)
    if wildcards.method not in MODEL_FREE_METHODS:
        inputs["model"] = res("models", RUN.format(**wildcards))
    return inputs
