"""What `neighbours.index: hnsw` costs in quality: recall@k against exact, and the change in the
oracle safe rate of the isaac targets (labels used only to report), with the time of each index.

    .venv/bin/python bench/hnsw_quality.py --corpus results/diasafety/corpus.parquet \
        --embeddings results/diasafety/embeddings/minilm.npz --record
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))
from isaac.embed import load_embeddings  # noqa: E402
from isaac.neighbours import hnsw_neighbours, top_k_neighbours  # noqa: E402
from record import record  # noqa: E402


def stage_commands(corpus, embeddings, workdir, k, eps, index, seed) -> list[list[str]]:
    """The neighbours, assess and sample (method isaac, tau 1, m 1) stages' arguments at this k,
    fixed eps and index, each stage's module first, with every output in `workdir`."""
    work = Path(workdir)
    neighbours, groups, stats = (
        work / name for name in ("neighbours.parquet", "groups.parquet", "groups.json")
    )
    assess_config = {
        "assessor": "dbscan",
        "eps": eps,
        "eps_quantile": None,
        "fuzzy_threshold": None,
        "pool": "neighbours",
    }
    sample_config = {"group_size": "members", "head_shortcut": "strict", "top_k_groups": 10}
    return [
        [
            "isaac.neighbours",
            f"--embeddings={embeddings}",
            "--config",
            json.dumps({"index": index, "k": k}),
            "--threads=2",
            f"--out={neighbours}",
        ],
        [
            "isaac.assess",
            f"--corpus={corpus}",
            f"--neighbours={neighbours}",
            f"--embeddings={embeddings}",
            "--likelihood=",
            "--config",
            json.dumps(assess_config),
            "--threads=2",
            f"--out={groups}",
            f"--stats={stats}",
        ],
        [
            "isaac.sample",
            f"--corpus={corpus}",
            f"--groups={groups}",
            f"--groups-stats={stats}",
            *("--method", "isaac", "--tau", "1.0", "--m", "1", "--seed", str(seed)),
            "--config",
            json.dumps(sample_config),
            f"--out={work / 'targets.parquet'}",
            f"--stats={work / 'targets.json'}",
        ],
    ]


def run_stages(commands: list[list[str]]) -> None:
    """Call each stage's main here with its arguments, in turn."""
    for module, *argv in commands:
        importlib.import_module(module).main(argv)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact neighbours (itself left out) that the index found."""
    hits = [len(set(a[1:]) & set(e[1:])) for a, e in zip(approx.tolist(), exact.tolist())]
    return float(np.mean(hits) / max(exact.shape[1] - 1, 1))


def compare(corpus, embeddings, k: int, eps: float, seeds: list[int]) -> dict:
    _, prompts, _ = load_embeddings(embeddings)
    timings, indices = {}, {}
    for name, search in (("exact", top_k_neighbours), ("hnsw", hnsw_neighbours)):
        start = time.perf_counter()
        indices[name] = search(prompts, k)[0]
        timings[name] = time.perf_counter() - start
    rates = {}
    with tempfile.TemporaryDirectory() as workdir:
        for index in ("exact", "hnsw"):
            rates[index] = []
            for seed in seeds:
                commands = stage_commands(
                    corpus, embeddings, workdir, k=k, eps=eps, index=index, seed=seed
                )
                run_stages(commands)
                stats = json.loads((Path(workdir) / "targets.json").read_text())
                rates[index].append(stats["oracle_safe_rate"])
    return {
        "recall_at_k": recall_at_k(indices["hnsw"], indices["exact"]),
        "search_s": {name: round(s, 2) for name, s in timings.items()},
        "oracle_safe_rate": rates,
        "oracle_safe_rate_change": float(np.mean(rates["hnsw"]) - np.mean(rates["exact"])),
        "seeds": seeds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--k", type=int, default=150)
    parser.add_argument("--eps", type=float, default=0.75)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    result = compare(args.corpus, args.embeddings, args.k, args.eps, args.seeds)
    result["load_average_before"] = load
    print(json.dumps(result, indent=2))
    if args.record:
        command = "python " + shlex.join(sys.argv)
        record(
            "hnsw_recall_at_k",
            round(result["recall_at_k"], 4),
            "share of exact neighbours",
            command,
            search_s=result["search_s"],
            k=args.k,
            load_average_before=load,
        )
        exact = float(np.mean(result["oracle_safe_rate"]["exact"]))
        hnsw = float(np.mean(result["oracle_safe_rate"]["hnsw"]))
        record(
            "hnsw_oracle_safe_rate",
            round(hnsw, 4),
            "oracle safe rate of isaac targets (mean over seeds)",
            command,
            baseline=round(exact, 4),
            change=round(result["oracle_safe_rate_change"], 4),
            per_seed=result["oracle_safe_rate"],
        )


if __name__ == "__main__":
    main()
