"""The sampling stages as a config's workflow runs them against a straightforward per-query loop.

The run's targets are first built with Snakemake (`snakemake --cores 2 results/{corpus}/targets/
{method}/tau{tau}-m{m}-seed{seed}.parquet` with the given config layers); then the neighbours,
assess and sample commands are taken from a dry run (`snakemake -n -p --forcerun neighbours
assess sample`), each with its rule's threads, and run with their outputs and logs in a
temporary folder, so the workflow's results are never touched.

Stages: those three commands, three processes with their Parquet I/O, in the working directory
Snakemake ran in, with the thread variables Snakemake sets to each rule's threads. Loop: in this
process, for each train example one neighbour query (cosine against every prompt, top-k), one
scikit-learn DBSCAN on the k responses, the K largest groups, a sharpened draw; k, K, eps and
the run from the parsed commands. Under the label-free eps rule (`assess.eps_quantile`) the loop
computes eps itself, plainly, and checks it against the eps the assess stage recorded. Both run
side by side, alternating, several times; the key (`--key`) is the median of the per-repetition
ratios (loop seconds / stages seconds), recorded with the config layers, encoder, eps,
eps_quantile and k. Each repetition also runs the three stages' ``main`` in this process with
the same arguments (modules imported beforehand): the stages' own work without interpreter
start-ups and imports, recorded beside the key (``in_process_s``). ``--record`` also rewrites
the per-repetition tables docs/benchmarks/{key}.csv of the keys bench/tables.py lists.

With ``--fresh`` the run is built from nothing in a new folder beside the repository, and its
jobs' seconds (their benchmark files) are recorded too (``build_job_s``), with their sum from
ingest to the targets, the once-per-corpus model2vec distillation left out
(``ingest_to_targets_s``).

    .venv/bin/python bench/sampling_vs_loop.py --configfile config/diasafety.yaml \
        --key sampling_vs_loop_default --repeats 5 --fresh --record
    .venv/bin/python bench/sampling_vs_loop.py --configfile config/diasafety.yaml \
        config/diasafety-minilm.yaml --key sampling_vs_loop_minilm --repeats 5 --fresh --record
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))
from bench_sample import pool_targets, schema_default  # noqa: E402
from isaac.assess import eps_rule_pools, nearest_distinct_sq  # noqa: E402
from isaac.cli import run as run_cli  # noqa: E402
from isaac.io import InputError  # noqa: E402
from isaac.runs import GLOBAL_POOL_METHODS, GROUP_METHODS, RUN, Run, fmt_tau  # noqa: E402
from record import record  # noqa: E402
from rule_times import rule_times  # noqa: E402
from tables import write_tables  # noqa: E402

STAGES = ("neighbours", "assess", "sample")
# Jobs a corpus runs once whatever its runs: left out of ingest_to_targets_s (`--fresh`)
ONCE_PER_CORPUS = ("encoder_model2vec",)
# Snakemake sets these to a job's threads
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
EPS_RTOL = 1e-9
# the methods that draw from the groups of each example's neighbour pool
POOL_GROUP_METHODS = [m for m in GROUP_METHODS if m not in GLOBAL_POOL_METHODS]


@dataclass(frozen=True)
class StageJob:
    """One job of a dry run: its rule, shell command, output and log files, threads."""

    rule: str
    command: str
    outputs: tuple[str, ...]
    log: str
    threads: int

    def words(self) -> list[str]:
        """The command's words without the environment assignments and the log redirect."""
        words = shlex.split(self.command)
        while re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words.pop(0)
        return words[: words.index(">")] if ">" in words else words

    @property
    def module(self) -> str:
        """The stage's module (the command runs `python -m <module>`)."""
        words = self.words()
        return words[words.index("-m") + 1]

    @property
    def argv(self) -> list[str]:
        """The arguments the command passes to the stage's main."""
        words = self.words()
        return words[words.index("-m") + 2 :]

    def option(self, name: str) -> str:
        """The value of `--name value` or `--name=value` in the stage's arguments."""
        argv = self.argv
        for i, word in enumerate(argv):
            if word == name:
                return argv[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
        raise KeyError(f"{self.rule} command has no {name}")

    def config(self) -> dict:
        """The stage's settings, as the rule passed them (its --config JSON)."""
        return json.loads(self.option("--config"))


def corpus_name(layers: Sequence[str]) -> str:
    """corpus.name of the last layer that sets it, else the schema's default."""
    name = schema_default("corpus", "name")
    for layer in layers:
        path = Path(layer)
        if not path.is_file():
            raise InputError(f"{layer}: no such config file")
        name = (yaml.safe_load(path.read_text()) or {}).get("corpus", {}).get("name", name)
    return name


def target(layers: Sequence[str], run: Run) -> str:
    """The run's targets file, spelled as the rules spell it."""
    filed = RUN.format(method=run.method, tau=fmt_tau(run.tau), m=run.m, seed=run.seed)
    return f"results/{corpus_name(layers)}/targets/{filed}.parquet"


def snakemake(directory: Path, layers: Sequence[str], *args: str) -> str:
    """Run this repository's workflow in `directory` with the config layers; its stdout."""
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(directory),
        *args,
        "--configfile",
        *(str(Path(layer).resolve()) for layer in layers),
    ]
    env = {**os.environ, "SLURM_CONF": os.devnull}
    proc = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise InputError(f"snakemake {' '.join(args)}: exited {proc.returncode}")
    return proc.stdout


def dry_run_jobs(output: str) -> dict[str, StageJob]:
    """The jobs of `snakemake -n -p` output by rule, from their `rule`, `output`, `log`,
    `threads` (1 when not printed) and `Shell command` lines."""
    jobs = {}
    for block in re.split(r"^rule ", output, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(re.findall(r"^    (output|log|threads): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if shell is None:
            continue
        jobs[rule] = StageJob(
            rule,
            shell.group(1),
            tuple(fields.get("output", "").split(", ")),
            fields.get("log", ""),
            int(fields.get("threads", 1)),
        )
    return jobs


def workflow_jobs(directory: Path, layers: Sequence[str], run: Run) -> list[StageJob]:
    """Build the run's targets, then the neighbours, assess and sample jobs of a dry run that
    forces them, in that order."""
    path = target(layers, run)
    snakemake(directory, layers, "--cores", "2", path)
    dry_run = snakemake(directory, layers, path, "--cores", "2", "-n", "-p", "--forcerun", *STAGES)
    jobs = dry_run_jobs(dry_run)
    missing = [rule for rule in STAGES if rule not in jobs]
    if missing:
        raise InputError(f"assess.pool: the run has no {', '.join(missing)} job")
    assessor = jobs["assess"].config()["assessor"]
    if assessor != "dbscan":
        raise InputError(f"assess.assessor: {assessor}; the loop compares with dbscan only")
    return [jobs[rule] for rule in STAGES]


def build_job_seconds(directory: Path, layers: Sequence[str]) -> dict[str, float]:
    """Seconds per rule of the jobs that built the run in `directory`, from their benchmark
    files (`benchmarks/{corpus}/{rule}/...`)."""
    times = rule_times(directory / "benchmarks" / corpus_name(layers))
    return {rule: round(float(s), 3) for rule, s in times.set_index("rule")["seconds"].items()}


def in_folder(jobs: list[StageJob], folder: Path) -> list[StageJob]:
    """The jobs with every output and log file moved under `folder` (same relative paths), in
    their own commands and in the commands that read them."""
    moved = {path: str(folder / path) for job in jobs for path in (*job.outputs, job.log) if path}

    def rewrite(command: str) -> str:
        for old, new in moved.items():
            pattern = r"(?<=[\s=])" + re.escape(shlex.quote(old)) + r"(?=\s|$)"
            command = re.sub(pattern, lambda _, new=new: shlex.quote(new), command)
        return command

    for new in moved.values():
        Path(new).parent.mkdir(parents=True, exist_ok=True)
    return [
        replace(
            job,
            command=rewrite(job.command),
            outputs=tuple(moved[path] for path in job.outputs),
            log=moved.get(job.log, ""),
        )
        for job in jobs
    ]


def run_stages(jobs: list[StageJob], directory: Path) -> list[float]:
    """Seconds of each stage's shell command, run one after the other as Snakemake runs them."""
    seconds = []
    for job in jobs:
        env = {**os.environ, **{name: str(job.threads) for name in THREAD_VARIABLES}}
        start = time.perf_counter()
        subprocess.run(["bash", "-c", job.command], check=True, cwd=directory, env=env)
        seconds.append(time.perf_counter() - start)
    return seconds


def run_in_process(jobs: list[StageJob], directory: Path) -> float:
    """Seconds of the three stages' main functions called here with the commands' arguments,
    each with its rule's threads."""
    start = time.perf_counter()
    with contextlib.chdir(directory):
        for job in jobs:
            module = importlib.import_module(job.module)
            with threadpool_limits(job.threads):
                module.main(job.argv)
    return time.perf_counter() - start


def eps_rule(responses: np.ndarray, pools: list[np.ndarray], quantile: float) -> float:
    """The label-free eps, plainly: per pool the eps rule reads, each member's distance to its
    nearest distinct member, then their quantile."""
    nearest = np.concatenate(
        [
            nearest_distinct_sq(responses[pools[q]].astype(np.float64))
            for q in eps_rule_pools(len(pools))
        ]
    )
    return float(np.quantile(np.sqrt(nearest[np.isfinite(nearest)]), quantile))


def per_query_loop(
    corpus, embeddings, k, eps=None, eps_quantile=None, tau=1.0, m=1, top_k=10, seed=0
) -> tuple[list[str], float]:
    """The baseline, written plainly: per train example a neighbour query (descending cosine,
    ties by row, the query first), then eps (`eps`, or the eps rule on these pools), then per
    example sklearn DBSCAN on the pool's responses, Counter for the K largest groups, the isaac
    sharpened softmax and a draw. Returns the targets (m per example) and the eps."""
    table = pd.read_parquet(corpus)
    train_ids = table.loc[table["split"] == "train", "id"].astype(str).to_numpy()
    with np.load(embeddings, allow_pickle=False) as data:
        prompts, responses = data["prompts"], data["responses"]
    n = len(prompts)
    k = min(k, n)
    pools = []
    for q in range(n):
        sims = prompts @ prompts[q]
        sims[q] = np.inf  # the query first
        candidates = np.flatnonzero(sims >= np.partition(sims, n - k)[n - k])
        pools.append(candidates[np.lexsort((candidates, -sims[candidates]))][:k])
    if eps is None:
        eps = eps_rule(responses, pools, eps_quantile)
    rng = np.random.default_rng(seed)
    targets = []
    for pool in pools:
        targets += pool_targets(responses, pool, eps, train_ids, tau, m, top_k, rng)
    return targets, eps


def loop_settings(jobs: list[StageJob], directory: Path) -> dict:
    """per_query_loop's arguments, from the parsed neighbours, assess and sample commands."""
    neighbours, assess, sample = jobs
    assess_config = assess.config()
    return {
        "corpus": directory / assess.option("--corpus"),
        "embeddings": directory / assess.option("--embeddings"),
        "k": neighbours.config()["k"],
        "eps": assess_config["eps"],
        "eps_quantile": assess_config["eps_quantile"],
        "tau": float(sample.option("--tau")),
        "m": int(sample.option("--m")),
        "top_k": sample.config()["top_k_groups"],
        "seed": int(sample.option("--seed")),
    }


def checked_groups(stats_path, loop_eps: float) -> dict:
    """The statistics the assess stage wrote (encoder, k, the eps it used), once the loop's eps
    is found equal to the stage's: otherwise the ratio would compare different work."""
    groups = json.loads(Path(stats_path).read_text())
    if not np.isclose(loop_eps, groups["eps"], rtol=EPS_RTOL, atol=0.0):
        raise RuntimeError(
            f"{stats_path}: the assess stage used eps {groups['eps']!r}, the loop {loop_eps!r}; "
            "the ratio would compare different work"
        )
    return groups


def side_by_side(jobs: list[StageJob], directory: Path, repeats: int) -> dict:
    """Alternate stages and loop `repeats` times (the order flips every repetition), the loop's
    eps checked against the stages' every time."""
    settings = loop_settings(jobs, directory)
    for job in jobs:
        importlib.import_module(job.module)
    stages_s, loop_s, per_stage, in_process_s = [], [], [], []
    for rep in range(repeats):
        in_process_s.append(run_in_process(jobs, directory))
        for which in ("stages", "loop") if rep % 2 == 0 else ("loop", "stages"):
            if which == "stages":
                per_stage.append(run_stages(jobs, directory))
                stages_s.append(sum(per_stage[-1]))
            else:
                start = time.perf_counter()
                with threadpool_limits(1):
                    _, eps = per_query_loop(**settings)
                loop_s.append(time.perf_counter() - start)
        groups = checked_groups(jobs[1].option("--stats"), eps)
    ratios = np.array(loop_s) / np.array(stages_s)
    return {
        "stages_s": [round(s, 3) for s in stages_s],
        "per_stage_s": {
            job.rule: [round(p[i], 3) for p in per_stage] for i, job in enumerate(jobs)
        },
        "loop_s": [round(s, 3) for s in loop_s],
        "ratios": [round(r, 2) for r in ratios],
        "in_process_s": [round(s, 3) for s in in_process_s],
        "median_ratio": float(np.median(ratios)),
        "encoder": groups["encoder"],
        "eps": groups["eps"],
        "eps_quantile": settings["eps_quantile"],
        "k": settings["k"],
        "top_k_groups": settings["top_k"],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configfile", nargs="+", required=True, help="config layers, as given to snakemake"
    )
    parser.add_argument("--method", default="isaac", choices=POOL_GROUP_METHODS)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--m", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--directory", type=Path, default=REPO, help="where Snakemake runs (default: the repo)"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="build the run from nothing in a new folder beside the repository (relative corpus "
        "paths resolve as there) and record each job's seconds up to the targets",
    )
    parser.add_argument("--key", default="sampling_vs_loop", help="the key in benchmarks.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as cleanup:
        if args.fresh:
            fresh = tempfile.TemporaryDirectory(dir=REPO.parent, prefix=".sampling-vs-loop-")
            directory = Path(cleanup.enter_context(fresh))
        else:
            directory = args.directory.resolve()
        load_before = os.getloadavg()
        run = Run(args.method, args.tau, args.m, args.seed)
        jobs = workflow_jobs(directory, args.configfile, run)
        build = build_job_seconds(directory, args.configfile) if args.fresh else {}
        with tempfile.TemporaryDirectory() as folder:
            result = side_by_side(in_folder(jobs, Path(folder)), directory, args.repeats)
    if build:
        result["build_job_s"] = build
        result["ingest_to_targets_s"] = round(
            sum(s for rule, s in build.items() if rule not in ONCE_PER_CORPUS), 3
        )
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["configfiles"] = list(args.configfile)
    result["stage_commands"] = [job.command for job in jobs]
    print(json.dumps(result, indent=2))
    if args.record:
        stages, loop = float(np.median(result["stages_s"])), float(np.median(result["loop_s"]))
        record(
            args.key,
            round(result.pop("median_ratio"), 2),
            "x (loop s / stages s)",
            "python " + shlex.join(sys.argv),
            baseline=None,
            median_stages_s=stages,
            median_loop_s=loop,
            median_in_process_ratio=round(loop / float(np.median(result["in_process_s"])), 2),
            **result,
        )
        write_tables()


if __name__ == "__main__":
    run_cli(main)
