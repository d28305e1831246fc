"""The sampling stages as the workflow runs them against a straightforward per-query loop.

Stages: three processes, ``python -m isaac.neighbours``, ``isaac.assess`` and ``isaac.sample``
(one method), with the commands and settings the rules pass, Parquet I/O included. Loop:
in this process, for each train example one neighbour query (cosine against every prompt,
top-k), one scikit-learn DBSCAN on the k responses, the K largest groups, a sharpened draw.
Both run side by side, alternating, several times; the key ``sampling_vs_loop`` is the median
of the per-repetition ratios (loop seconds / stages seconds). Each repetition also runs the
three stages' ``main`` in this process (modules imported beforehand): the stages' own work
without interpreter start-ups and imports, recorded beside the key (``in_process_s``).
``--record`` also rewrites the per-repetition table docs/benchmarks/sampling_vs_loop.csv
(bench/tables.py).

    .venv/bin/python bench/sampling_vs_loop.py --corpus results/diasafety/corpus.parquet \
        --embeddings results/diasafety/embeddings/minilm.npz --repeats 5 --record
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from bench_sample import pool_targets  # noqa: E402
from record import record  # noqa: E402
from tables import write_tables  # noqa: E402


def stage_commands(
    corpus,
    embeddings,
    workdir,
    k=150,
    eps=0.75,
    index="exact",
    method="isaac",
    tau=1.0,
    m=1,
    seed=0,
    top_k=10,
) -> list[list[str]]:
    """The neighbours, assess and sample commands of rules/sample.smk for one run (the same
    config slices as `snakemake -n -p --configfile config/diasafety.yaml` prints)."""
    work = Path(workdir)
    neighbours, groups = work / "neighbours.parquet", work / "groups.parquet"
    python = [sys.executable, "-m"]
    assess_config = {
        "assessor": "dbscan",
        "eps": eps,
        "eps_quantile": None,
        "fuzzy_threshold": None,
        "pool": "neighbours",
    }
    sample_config = {"group_size": "members", "head_shortcut": "strict", "top_k_groups": top_k}
    return [
        [
            *python,
            "isaac.neighbours",
            "--embeddings",
            str(embeddings),
            "--config",
            json.dumps({"index": index, "k": k}),
            "--threads",
            str(STAGE_THREADS[0]),
            "--out",
            str(neighbours),
        ],
        [
            *python,
            "isaac.assess",
            "--corpus",
            str(corpus),
            f"--neighbours={neighbours}",
            f"--embeddings={embeddings}",
            "--likelihood=",
            "--config",
            json.dumps(assess_config),
            "--threads",
            str(STAGE_THREADS[1]),
            "--out",
            str(groups),
            "--stats",
            str(work / "groups.json"),
        ],
        [
            *python,
            "isaac.sample",
            "--corpus",
            str(corpus),
            f"--groups={groups}",
            f"--groups-stats={work / 'groups.json'}",
            "--method",
            method,
            "--tau",
            str(tau),
            "--m",
            str(m),
            "--seed",
            str(seed),
            "--config",
            json.dumps(sample_config),
            "--out",
            str(work / "targets.parquet"),
            "--stats",
            str(work / "targets.json"),
        ],
    ]


# threads of the neighbours, assess and sample rules: Snakemake sets these variables to them
STAGE_THREADS = (2, 2, 1)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_stages(commands: list[list[str]]) -> list[float]:
    """Seconds of each stage process, run one after the other as Snakemake runs them."""
    seconds = []
    for command, threads in zip(commands, STAGE_THREADS):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
            **{name: str(threads) for name in THREAD_VARIABLES},
        }
        start = time.perf_counter()
        subprocess.run(
            command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        seconds.append(time.perf_counter() - start)
    return seconds


def run_in_process(commands: list[list[str]]) -> float:
    """Seconds of the three stages' main functions called here, with each rule's threads."""
    start = time.perf_counter()
    for command, threads in zip(commands, STAGE_THREADS):
        module = importlib.import_module(command[2])
        with threadpool_limits(threads):
            module.main(command[3:])
    return time.perf_counter() - start


def per_query_loop(corpus, embeddings, k=150, eps=0.75, tau=1.0, top_k=10, seed=0) -> list[str]:
    """The baseline, written plainly: per train example a neighbour query, sklearn DBSCAN on
    the pool's responses, Counter for the K largest groups, the isaac sharpened softmax and a
    draw. Returns one target id per example."""
    table = pd.read_parquet(corpus)
    train_ids = table.loc[table["split"] == "train", "id"].astype(str).to_numpy()
    with np.load(embeddings, allow_pickle=False) as data:
        prompts, responses = data["prompts"], data["responses"]
    rng = np.random.default_rng(seed)
    targets = []
    for q in range(len(prompts)):
        sims = prompts @ prompts[q]
        sims[q] = np.inf  # the query first
        top = np.argpartition(-sims, min(k, len(sims)) - 1)[:k]
        pool = top[np.argsort(-sims[top], kind="stable")]
        targets += pool_targets(responses, pool, eps, train_ids, tau, 1, top_k, rng)
    return targets


def side_by_side(corpus, embeddings, repeats: int, **settings) -> dict:
    """Alternate stages and loop `repeats` times (the order flips every repetition)."""
    loop_settings = {
        key: settings[key] for key in ("k", "eps", "tau", "top_k", "seed") if key in settings
    }
    stages_s, loop_s, per_stage, in_process_s = [], [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        commands = stage_commands(corpus, embeddings, workdir, **settings)
        sys.path.insert(0, str(REPO / "src"))
        for command in commands:
            importlib.import_module(command[2])
        for rep in range(repeats):
            in_process_s.append(run_in_process(commands))
            for which in ("stages", "loop") if rep % 2 == 0 else ("loop", "stages"):
                if which == "stages":
                    per_stage.append(run_stages(commands))
                    stages_s.append(sum(per_stage[-1]))
                else:
                    start = time.perf_counter()
                    with threadpool_limits(1):
                        per_query_loop(corpus, embeddings, **loop_settings)
                    loop_s.append(time.perf_counter() - start)
    ratios = np.array(loop_s) / np.array(stages_s)
    return {
        "stages_s": [round(s, 3) for s in stages_s],
        "per_stage_s": {
            name: [round(p[i], 3) for p in per_stage]
            for i, name in enumerate(("neighbours", "assess", "sample"))
        },
        "loop_s": [round(s, 3) for s in loop_s],
        "ratios": [round(r, 2) for r in ratios],
        "in_process_s": [round(s, 3) for s in in_process_s],
        "median_ratio": float(np.median(ratios)),
        "commands": [shlex.join(c) for c in commands],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--embeddings", required=True, help="embeddings/{encoder}.npz")
    parser.add_argument("--k", type=int, default=150)
    parser.add_argument("--eps", type=float, default=0.75)
    parser.add_argument("--index", default="exact", choices=["exact", "hnsw"])
    parser.add_argument("--key", default="sampling_vs_loop", help="the key in benchmarks.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args()
    load = os.getloadavg()
    result = side_by_side(
        args.corpus, args.embeddings, args.repeats, k=args.k, eps=args.eps, index=args.index
    )
    result["load_average"] = [round(x, 2) for x in load]
    print(json.dumps(result, indent=2))
    if args.record:
        stages, loop = float(np.median(result["stages_s"])), float(np.median(result["loop_s"]))
        record(
            args.key,
            round(result["median_ratio"], 2),
            "x (loop s / stages s)",
            "python " + shlex.join(sys.argv),
            baseline=None,
            stages_s=result["stages_s"],
            loop_s=result["loop_s"],
            median_stages_s=stages,
            median_loop_s=loop,
            per_stage_s=result["per_stage_s"],
            load_average_before=result["load_average"],
            in_process_s=result["in_process_s"],
            median_in_process_ratio=round(loop / float(np.median(result["in_process_s"])), 2),
            stage_commands=result["commands"],
        )
        write_tables()


if __name__ == "__main__":
    main()
