"""Paths, run ids and stage settings shared by the rule files."""

import functools
import json
import shlex
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.settings.types import DeploymentMethod

# The run ids and method lists are declared once, in the package (src/isaac/runs.py), on the
# Snakefile's sys.path.
from isaac.io import InputError, check_model_folder  # noqa: E402
from isaac.plots import FIGURES  # noqa: E402
from isaac.provenance import content_fingerprint  # noqa: E402
from isaac.runs import (  # noqa: E402
    GLOBAL_POOL_METHODS,
    DPO_START,
    GROUP_METHODS,
    MODEL_FREE_METHODS,
    PAIR_METHODS,
    POOL_METHODS,
    REFERENCE_METHODS,
    RUN,
    SAMPLED_METHODS,
    TAU_FREE_METHODS,
    TRAINED_METHODS,
    WILDCARD_PATTERNS,
    method_pattern,
    run_ids,
    run_method,
    round_seed,
    round_seed_clash,
)
from isaac.settings import section_settings  # noqa: E402
from isaac.workflow_config import refuse  # noqa: E402

CORPUS = config["corpus"]["name"]
RESULTS = f"results/{CORPUS}"
LOGS = f"logs/{CORPUS}"
BENCHMARKS = f"benchmarks/{CORPUS}"

# Conda jobs drop PYTHONPATH, so every command puts the package's source folder first itself.
# Without conda, jobs use the interpreter that runs Snakemake (the project's environment),
# whatever `python` the shell would find first. Braces are doubled for Snakemake's formatting.
_IN_CONDA_ENVS = (
    DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
_SOURCE = shlex.quote(str(Path(workflow.basedir) / "src"))
_PYTHON = "python" if _IN_CONDA_ENVS else shlex.quote(sys.executable)
ISAAC = f"PYTHONPATH={_SOURCE}${{{{PYTHONPATH:+:$PYTHONPATH}}}} {_PYTHON} -m isaac"


wildcard_constraints:
    **WILDCARD_PATTERNS,
    n=r"[0-9]+",
    round=r"[0-9]+",
    shard=r"[0-9]+",
    features=r"tfidf-lr|minilm-lr|cross-minilm",


# The methods whose runs train a model: the constraint of the generate rule (a model-free
# method's replies come from a rule of its own). Those that sample targets and fine-tune on
# them (rules sample and train), and those that write preference pairs and train with DPO
# from the raw run's model (rules pairs and train_dpo).
TRAINED = method_pattern(TRAINED_METHODS)
SAMPLED = method_pattern(SAMPLED_METHODS)
PAIRED = method_pattern(PAIR_METHODS)

# Encoders and generators known by name; any other embed.encoder or generator.model is a
# local model folder.
NAMED_ENCODERS = ("minilm", "tfidf", "model2vec")
NAMED_GENERATORS = ("tiny-gpt2", "smollm2")
MODEL_NAMES = {"embed.encoder": NAMED_ENCODERS, "generator.model": NAMED_GENERATORS}


def local_model_folder(key):
    """The local model folder that key embed.encoder or generator.model names, else None."""
    section, name = key.split(".")
    value = config[section][name]
    return None if value in MODEL_NAMES[key] else value


def encoder_name():
    """The encoder's name in file names: a named encoder, or a model folder's (or embed.name)."""
    encoder = config["embed"]["encoder"]
    if encoder in NAMED_ENCODERS:
        return encoder
    return config["embed"]["name"] or Path(encoder).name


# Settings the schema cannot check (each other, the file system): refused before any job runs,
# in one line naming the key (isaac.workflow_config.refuse).
if config["corpus"]["format"] != "demo" and not (
    config["corpus"]["path"] and Path(config["corpus"]["path"]).exists()
):
    refuse(
        "corpus.path",
        f"{config['corpus']['path']!r} does not exist (relative paths are read from "
        f"{Path.cwd()}); format {config['corpus']['format']} reads its data there",
    )
for _section, _key in ("corpus", "path"), ("embed", "encoder"), ("judge", "from"):
    _value = config[_section][_key] or ""
    if "{" in _value or "}" in _value:
        refuse(
            f"{_section}.{_key}",
            f"{_value!r} holds a brace, which Snakemake reads as a wildcard in the "
            "job's files and settings; rename the file or folder",
        )
for _key, _named in MODEL_NAMES.items():
    _folder = local_model_folder(_key)
    if not _folder:
        continue
    if not Path(_folder).is_dir():
        refuse(
            _key,
            f"{_folder!r} is neither one of {', '.join(_named)} nor a model folder",
        )
    try:
        check_model_folder(_folder)
    except InputError as err:
        refuse(_key, str(err))
# A model folder's name names the embeddings file unless embed.name does: it must be a name
# embed.name could hold (the schema's rule for it).
_NAME_SCHEMA = yaml.safe_load(
    Path(workflow.basedir, "config", "schema.yaml").read_text()
)
_NAME_SCHEMA = _NAME_SCHEMA["properties"]["embed"]["properties"]["name"]
if not jsonschema.Draft202012Validator(_NAME_SCHEMA).is_valid(encoder_name()):
    refuse(
        "embed.encoder",
        f"the folder name {encoder_name()!r} names the embeddings file and is not a plain "
        "file name (letters, digits, _ . -, at most 100 characters); set embed.name",
    )
_JUDGE_FROM = Path(config["judge"]["from"] or "/").resolve()
if Path(RESULTS).resolve() in (_JUDGE_FROM, *_JUDGE_FROM.parents):
    refuse(
        "judge.from",
        f"{config['judge']['from']!r} lies in this corpus's own results ({RESULTS}), where "
        "the judges are copied to; name another corpus's results/{name}/judge",
    )
_MISSING_BASELINES = [
    m for m in config["summary"]["baselines"] if m not in config["sweep"]["methods"]
]
if _MISSING_BASELINES:
    refuse(
        "summary.baselines",
        f"{', '.join(_MISSING_BASELINES)} not in sweep.methods; "
        "every method is compared with these, so the sweep must run them",
    )
# A baseline's runs are read at tau 1.0, where the tau-free methods are filed.
_TAU_BASELINES = [
    m for m in config["summary"]["baselines"] if m not in TAU_FREE_METHODS
]
if _TAU_BASELINES and 1.0 not in config["sweep"]["taus"]:
    refuse(
        "summary.baselines",
        f"{', '.join(_TAU_BASELINES)} depend on tau and are compared at tau 1.0, "
        "which sweep.taus does not hold",
    )
_ROUNDS = max(
    [config["train"]["rounds"], *config["experiments"]["tempering"]["rounds"]]
)
_SEED_CLASH = round_seed_clash(config["sweep"]["seeds"], _ROUNDS)
if _SEED_CLASH:
    refuse("sweep.seeds", f"{_SEED_CLASH}, with {_ROUNDS} tempering rounds")


def res(*parts):
    """A path under results/{corpus}/."""
    return "/".join([RESULTS, *parts])


def logs(*parts):
    """A log path under logs/{corpus}/."""
    return "/".join([LOGS, *parts])


def bench(*parts):
    """A benchmark path under benchmarks/{corpus}/."""
    return "/".join([BENCHMARKS, *parts])


def stage_config(section, job=None):
    """A job's --config: config section `section` as canonical JSON, without its structure
    keys, and with the keys the job cannot depend on (unused_keys) null, so that editing them
    reruns nothing."""
    nulled = unused_keys(section, job)
    return json.dumps(
        section_settings(config[section], section, nulled), sort_keys=True
    )


def unused_keys(section, job=None):
    """The keys of `section` that a job of the stage reading it cannot depend on: the one
    place a job's settings are narrowed. `job` tells jobs of one section apart: the
    encoder_model2vec job of embed, the global pool's job of assess, a sample job's method, the
    head_safety job of summary, an experiment's table, a judge job's features."""
    if section == "corpus":
        demo = config["corpus"]["format"] == "demo"
        return ("path", "fields") if demo else ("demo",)
    if section == "embed":
        if job == "encoder_model2vec":
            return ("encoder", "batch_size", "tfidf_components")
        tfidf = config["embed"]["encoder"] == "tfidf"
        return ("model2vec_dims", "batch_size" if tfidf else "tfidf_components")
    if section == "assess":
        assess = config["assess"]
        dbscan = assess["assessor"] == "dbscan"
        unused = [] if dbscan else ["eps", "eps_quantile"]
        if job == "global":
            # one pool of every train row, at the eps the pools' groups recorded
            unused = ["pool", "eps", "eps_quantile"]
        elif dbscan and assess["eps"] is not None:
            unused.append("eps_quantile")  # a fixed eps replaces the rule
        if assess["assessor"] != "fuzzy":
            unused.append("fuzzy_threshold")
        return unused
    if section == "sample" and job not in GROUP_METHODS:
        # only the group methods sample groups: the others read none of the section
        return list(section_settings(config["sample"], "sample"))
    if section == "judge" and (job != "cross-minilm" or config["judge"]["from"]):
        return (
            "cross_encoder",
        )  # only a cross-minilm judge fitted here fine-tunes MiniLM
    if section == "summary" and job in ("head_safety", "trained_encoders"):
        # the first compares a pool's head with its rest, the second the points with raw
        return ("baselines",)
    if section == "experiments":
        return [name for name in config["experiments"] if name != job]  # one table each
    return ()


# The tiny generator trains in a minute on a CPU; pretrained ones want a GPU and more memory.
TINY_GENERATOR = config["generator"]["model"] == "tiny-gpt2"


def by_generator(tiny, pretrained):
    """A resource value (threads, memory, minutes, GPUs) for the configured generator."""
    return tiny if TINY_GENERATOR else pretrained


def grow_with_attempt(mem_mb):
    """Memory that grows with each retry, so a job killed for memory is resubmitted with more."""
    return lambda wildcards, attempt: mem_mb * attempt


def fingerprint(name, files):
    """Params {name: the content fingerprint of `files`}, none without files. Snakemake reruns
    a job whose params change, so the job reruns when a file it reads changes, even one that
    kept its old modification time (cp -p, rsync -a, tar x, a restored backup). `files`: paths,
    or an input function giving them per job."""
    if not files:
        return {}
    of_job = files if callable(files) else lambda wildcards: files
    return {name: lambda wildcards: invocation_fingerprint(tuple(of_job(wildcards)))}


@functools.cache
def invocation_fingerprint(paths):
    """content_fingerprint, read once per invocation: every job of a rule asks for it."""
    return content_fingerprint(paths)


def optional_input(name):
    """A params function: the path of input `name`, or "" when the job does not need it."""
    return lambda wildcards, input: input.get(name, "") or ""


def sweep_runs():
    """Every run id of the sweep: generated and scored, and sampled and trained unless its
    method is model-free."""
    return sweep_runs_of(config)


def training_stats(run):
    """The statistics of what a run trained on: its targets, or a pair method's pairs."""
    kind = "pairs" if run_method(run) in PAIR_METHODS else "targets"
    return res(kind, f"{run}.json")


def sweep_runs_of(workflow_config):
    """Every run id of the sweep of a workflow config (this one's, or a point's)."""
    sweep = workflow_config["sweep"]
    return run_ids(sweep["methods"], sweep["taus"], sweep["ms"], sweep["seeds"])


def figure_outputs():
    """Every figure (isaac.plots.FIGURES names them with the rules that draw them)."""
    return [res("figures", f"{name}.png") for name in FIGURES]


def all_outputs():
    """The demo's deliverables: the corpus tables, the comparison and every figure."""
    return [
        res("likelihood.parquet"),
        *ngram_tables(),
        res("summary.md"),
        res("summary.csv"),
        res("runs.csv"),
        res("pairs.csv"),
        *figure_outputs(),
    ]
