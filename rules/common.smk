"""Paths, wildcard lists and config slices shared by the rule files."""

import json
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

CORPUS = config["corpus"]["name"]
RESULTS = f"results/{CORPUS}"
LOGS = f"logs/{CORPUS}"
BENCHMARKS = f"benchmarks/{CORPUS}"

# Conda jobs drop PYTHONPATH, so every command names the package's source folder itself.
# Without conda, jobs use the interpreter that runs Snakemake (the project's environment),
# whatever `python` the shell would find first.
_IN_CONDA_ENVS = (
    DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
ISAAC = "PYTHONPATH={} {} -m isaac".format(
    shlex.quote(str(Path(workflow.basedir) / "src")),
    "python" if _IN_CONDA_ENVS else shlex.quote(sys.executable),
)

# The tiny generator trains in a minute on a CPU; pretrained ones want a GPU and more memory.
TINY_GENERATOR = config["generator"]["model"] == "tiny-gpt2"


def by_generator(tiny, pretrained):
    """A resource value (threads, memory, minutes, GPUs) for the configured generator."""
    return tiny if TINY_GENERATOR else pretrained


def grow_with_attempt(mem_mb):
    """Memory that grows with each retry, so a job killed for memory is resubmitted with more."""
    return lambda wildcards, attempt: mem_mb * attempt


# Methods that never look at tau run once per (m, seed), filed under tau 1.0.
TAU_FREE_METHODS = ("raw", "random", "sft")
RUN = "{method}/tau{tau}-m{m}-seed{seed}"


wildcard_constraints:
    method="|".join(["raw", "random", "sft", "isaac_paper", "isaac", "exp", "max"]),
    tau=r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",
    m=r"[0-9]+",
    seed=r"[0-9]+",
    n=r"[0-9]+",


def fmt_tau(tau):
    """One spelling per temperature, so 1 and 1.0 name the same file."""
    return repr(float(tau))


def encoder_name():
    encoder = config["embed"]["encoder"]
    if encoder in ("minilm", "tfidf"):
        return encoder
    return config["embed"]["name"] or Path(encoder).name


def dbscan_eps():
    assess = config["assess"]
    if assess["eps"] is not None:
        return assess["eps"]
    defaults = assess["eps_defaults"]
    return defaults.get(encoder_name(), defaults.get("other", 0.75))


def run_ids(methods, taus, ms, seeds):
    """Run ids "{method}/tau{tau}-m{m}-seed{seed}", tau-free methods once per (m, seed)."""
    ids = []
    for method in methods:
        method_taus = [1.0] if method in TAU_FREE_METHODS else taus
        for tau in method_taus:
            for m in ms:
                for seed in seeds:
                    run = RUN.format(method=method, tau=fmt_tau(tau), m=m, seed=seed)
                    if run not in ids:
                        ids.append(run)
    return ids


def sweep_runs():
    sweep = config["sweep"]
    return run_ids(sweep["methods"], sweep["taus"], sweep["ms"], sweep["seeds"])


def tau_figure_runs():
    """Targets (sampled, not trained) behind the oracle-safe-rate-vs-tau figure."""
    sweep = config["sweep"]
    taus = sorted(set(config["sample"]["figure_taus"]) | set(sweep["taus"]))
    methods = ["raw", "random", "isaac", "isaac_paper", "exp", "max"]
    return run_ids(methods, taus, sweep["ms"][:1], sweep["seeds"][:1])


def res(*parts):
    return "/".join([RESULTS, *parts])


def all_outputs():
    """The demo's deliverables: the corpus tables, the comparison and every figure."""
    return [
        res("likelihood.parquet"),
        *ngram_tables(),
        res("summary.md"),
        res("summary.csv"),
        *figure_outputs(),
    ]


FIGURES = (
    "longtail_responses",  # corpus.smk
    "longtail_ngrams",  # corpus.smk
    "group_sizes",  # sample.smk
    "oracle_safe_rate_vs_tau",  # sample.smk
    "safety_vs_distinct2",  # report.smk
    "oracle_vs_model_safety",  # report.smk
)


def figure_outputs():
    return [res("figures", f"{name}.png") for name in FIGURES]


def config_json(section):
    """One config section as canonical JSON, passed to a stage's CLI as a single param."""
    return json.dumps(config[section], sort_keys=True)


def run_files(folder, ext):
    """results/{corpus}/{folder}/{run}{ext} for every run of the sweep."""
    return [res(folder, f"{run}{ext}") for run in sweep_runs()]


def corpus_input_files():
    """The files ingest reads, so editing the data reruns it (none for the demo corpus)."""
    corpus = config["corpus"]
    fmt, path = corpus["format"], corpus.get("path")
    if fmt == "demo" or not path:
        return []
    if fmt == "diasafety":
        return [str(Path(path) / f"{split}.json") for split in ("train", "val", "test")]
    if fmt == "diasafety_generations" and Path(path).is_dir():
        return sorted(str(p) for p in Path(path).glob("*.json")) or [path]
    return [path]


def ingest_settings():
    """The corpus slice as JSON strings for the ingest command (only what the format reads)."""
    corpus = config["corpus"]
    demo = corpus["format"] == "demo"
    return {
        "format": corpus["format"],
        "path": "" if demo else (corpus.get("path") or ""),
        "fields": json.dumps({} if demo else corpus["fields"], sort_keys=True),
        "default_split": corpus["default_split"],
        "empty_responses": corpus["empty_responses"],
        "demo": json.dumps(corpus["demo"] if demo else {}, sort_keys=True),
    }


def ngram_tables():
    return [
        res("ngrams", f"n{n}.parquet") for n in range(1, config["ngrams"]["max_n"] + 1)
    ]


# --- sampling stages (rules/sample.smk) -------------------------------------------------
POOL_METHODS = ("random", "isaac", "isaac_paper", "exp", "max")
GROUP_METHODS = ("isaac", "isaac_paper", "exp", "max")


def embeddings_file():
    return res("embeddings", f"{encoder_name()}.npz")


def neighbours_file():
    return res("neighbours", f"{encoder_name()}-k{config['neighbours']['k']}.parquet")


def groups_file():
    return res("groups", f"{config['assess']['assessor']}.parquet")


def assess_inputs(wildcards):
    """Only the tables the configured assessor and pool mode read."""
    assess = config["assess"]
    inputs = {"corpus": res("corpus.parquet")}
    if assess["pool"] == "neighbours":
        inputs["neighbours"] = neighbours_file()
    if assess["assessor"] == "dbscan":
        inputs["embeddings"] = embeddings_file()
    if assess["assessor"] == "likelihood":
        inputs["likelihood"] = res("likelihood.parquet")
    return inputs


def optional_input(name):
    """A params function: the path of input `name`, or "" when the rule does not use it."""
    return lambda wildcards, input: input.get(name, "") or ""


def assess_settings():
    """The assess slice, each value only where the assessor reads it ("" otherwise)."""
    assess = config["assess"]
    return {
        "assessor": assess["assessor"],
        "pool": assess["pool"],
        "eps": dbscan_eps() if assess["assessor"] == "dbscan" else "",
        "fuzzy_threshold": (
            assess["fuzzy_threshold"] if assess["assessor"] == "fuzzy" else ""
        ),
    }


def sample_inputs(wildcards):
    """raw and sft read only the corpus; the pool methods also read the groups table."""
    inputs = {"corpus": res("corpus.parquet")}
    if wildcards.method in POOL_METHODS:
        inputs["groups"] = groups_file()
    return inputs


def sample_setting(name):
    """A params function: one sample-stage value, "" for methods that do not use it, so an
    edit that cannot change a method's targets does not rerun it (nor what trains on them).
    """

    def value(wildcards):
        method = wildcards.method
        assess = config["assess"]
        pool, group = method in POOL_METHODS, method in GROUP_METHODS
        values = {
            "top_k": config["sample"]["top_k_groups"] if group else "",
            "head_shortcut": config["sample"]["head_shortcut"] if group else "",
            "assessor": assess["assessor"] if pool else "",
            "encoder": (
                encoder_name()
                if pool
                and (assess["pool"] == "neighbours" or assess["assessor"] == "dbscan")
                else ""
            ),
            "eps": dbscan_eps() if pool and assess["assessor"] == "dbscan" else "",
            "pool": assess["pool"] if pool else "",
            "k": (
                config["neighbours"]["k"]
                if pool and assess["pool"] == "neighbours"
                else ""
            ),
        }
        return values[name]

    return value


def tau_figure_stats():
    return [res("targets", f"{run}.json") for run in tau_figure_runs()]
