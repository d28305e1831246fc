"""Paths, wildcard lists and config slices shared by the rule files."""

import shlex
from pathlib import Path

CORPUS = config["corpus"]["name"]
RESULTS = f"results/{CORPUS}"
LOGS = f"logs/{CORPUS}"
BENCHMARKS = f"benchmarks/{CORPUS}"

# Conda jobs drop PYTHONPATH, so every command names the package's source folder itself.
ISAAC = "PYTHONPATH={} python -m isaac".format(
    shlex.quote(str(Path(workflow.basedir) / "src"))
)

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
    return [res("summary.md"), res("summary.csv"), *figure_outputs()]


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
