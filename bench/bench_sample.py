"""Benchmark of the sampling stages (not a test): vectorised assess + sample vs a per-query loop.

The per-query loop is what the reference implementation does: for every query, fit sklearn
DBSCAN on its pool's response vectors, count groups with a Counter, keep the top K, take the
head shortcut, soften the sizes and draw. The vectorised path is isaac.assess.dbscan_groups
(all pools at once: batched distances, one connected-components call) + isaac.sample.sample.

    .venv/bin/python bench/bench_sample.py --corpus results/diasafety/corpus.parquet \
        --embeddings results/diasafety/embeddings/minilm.npz --k 150 --eps 0.75

With --embed, the embeddings are (re)computed first and timed (--encoder, all train texts).
Settings not given take config/schema.yaml's defaults (eps: the assess stage's label-free
eps_quantile rule on these pools).
Prints a Markdown table and, with --json, writes the numbers; `--record` merges the key
`sampling_in_process` (the speed-up of assess + sample, with every step's seconds) into
docs/benchmarks.json and rewrites docs/benchmarks/sampling_steps.csv from it (bench/tables.py).
With --eps-sweep, also the oracle safe rates of `isaac` and `max` at each of those eps (written
as a table by --eps-csv):

    .venv/bin/python bench/bench_sample.py --corpus results/diasafety/corpus.parquet \
        --embeddings results/diasafety/embeddings/minilm.npz --k 150 --eps 0.75 \
        --eps-sweep 0.4 0.6 0.7 0.75 0.8 0.85 0.9 1.0 --eps-csv eps_sweep.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.special import softmax
from sklearn.cluster import DBSCAN

from isaac import assess, embed, neighbours, sample
from isaac.embed import EmbedConfig
from isaac.io import train_rows
from isaac.pools import pools_from_lists
from isaac.runs import Run
from isaac.sample import SampleConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
sys.path.insert(0, str(REPO / "bench"))
from record import record  # noqa: E402
from tables import write_tables  # noqa: E402


def schema_default(section: str, key: str):
    """The default of a config key, as config/schema.yaml declares it."""
    schema = yaml.safe_load(SCHEMA.read_text())
    return schema["properties"][section]["properties"][key]["default"]


def pool_targets(vectors, members, eps, train_ids, tau, m, top_k, rng) -> list:
    """One query's m targets, the reference way: DBSCAN on its pool's vectors (the query's own
    row first), Counter for the K largest groups, the head shortcut, sharpened softmax, draw."""
    labels = DBSCAN(eps=eps, min_samples=1).fit_predict(vectors[members])
    counts = Counter(labels.tolist()).most_common()  # ties: first seen first
    top = counts[:top_k]
    own = labels[0]
    if top[0][0] == own and top[0][1] >= 2 and (len(counts) == 1 or top[0][1] > counts[1][1]):
        return [train_ids[members[0]]] * m
    sizes = np.array([c for _, c in top], dtype=float)
    si = (sizes[0] - (sizes[1] if len(sizes) > 1 else sizes[0])) / max(sizes[0] - sizes[-1], 1e-3)
    p = softmax(sizes / ((1 + 1e-3 - si) * tau))
    targets = []
    for _ in range(m):
        group = top[rng.choice(len(top), p=p)][0]
        targets.append(train_ids[rng.choice(members[labels == group])])
    return targets


def reference_loop(vectors, pools, eps, train_ids, tau, m, top_k, seed):
    """Per-query DBSCAN + Counter + softmax + draw, in the style of the reference code."""
    rng = np.random.default_rng(seed)
    return [
        pool_targets(
            vectors,
            pools.index[pools.offsets[q] : pools.offsets[q + 1]],
            eps,
            train_ids,
            tau,
            m,
            top_k,
            rng,
        )
        for q in range(len(pools))
    ]


def eps_sweep(train, responses, pools, eps_values, config: SampleConfig):
    """Per eps: how many pools have no head, shortcut shares, oracle safe rates (tau 1, m 1)."""
    rows = []
    for eps in eps_values:
        labels = assess.dbscan_groups(responses, pools, eps)
        n_groups = np.maximum.reduceat(labels, pools.offsets[:-1]) + 1
        row = {
            "eps": eps,
            "all_singletons": float(np.mean(n_groups == pools.lengths)),
            "mean_groups": float(n_groups.mean()),
        }
        for mode in ("strict", "reference"):
            at_eps = dataclasses.replace(config, head_shortcut=mode)
            _, st = sample.sample(Run("isaac", 1.0, 1, 0), train, at_eps, pools, labels)
            row[f"shortcut_{mode}"] = st["head_shortcut_share"]
            row[f"isaac_{mode}"] = st["oracle_safe_rate"]
            row["head_median"] = st["head_group_size"]["quantiles"]["median"]
        at_eps = dataclasses.replace(config, head_shortcut="strict")
        _, st = sample.sample(Run("max", 1.0, 1, 0), train, at_eps, pools, labels)
        row["max_strict"] = st["oracle_safe_rate"]
        rows.append(row)
    return rows


# The eps sweep's table: header -> (key of an eps_sweep row, cell format).
EPS_SWEEP_COLUMNS = {
    "eps": ("eps", "{:g}"),
    "pools all singletons": ("all_singletons", "{:.3f}"),
    "mean groups per pool": ("mean_groups", "{:.1f}"),
    "median N_1": ("head_median", "{:g}"),
    "shortcut strict": ("shortcut_strict", "{:.3f}"),
    "shortcut reference": ("shortcut_reference", "{:.3f}"),
    "isaac oracle safe (strict)": ("isaac_strict", "{:.3f}"),
    "isaac oracle safe (reference)": ("isaac_reference", "{:.3f}"),
    "max oracle safe (strict)": ("max_strict", "{:.3f}"),
}


def eps_sweep_table(rows) -> pd.DataFrame:
    """The eps sweep's rows with the cells the docs show (shares and safe rates to 3 decimals)."""
    return pd.DataFrame(
        [
            {header: fmt.format(row[key]) for header, (key, fmt) in EPS_SWEEP_COLUMNS.items()}
            for row in rows
        ]
    )


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--embeddings", required=True, help="read, or written with --embed")
    parser.add_argument("--embed", action="store_true", help="compute and time the embeddings")
    parser.add_argument("--encoder", default=schema_default("embed", "encoder"))
    parser.add_argument("--batch-size", type=int, default=schema_default("embed", "batch_size"))
    parser.add_argument(
        "--tfidf-components", type=int, default=schema_default("embed", "tfidf_components")
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=schema_default("neighbours", "k"))
    parser.add_argument("--eps", type=float, help="default: the assess.eps_quantile rule")
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--m", type=int, default=1)
    parser.add_argument("--top-k", type=int, default=schema_default("sample", "top_k_groups"))
    parser.add_argument(
        "--eps-sweep",
        type=float,
        nargs="*",
        default=[],
        help="also tabulate these eps: singleton share, shortcut share, safe rates",
    )
    parser.add_argument("--eps-csv", help="write the eps sweep's table here")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args()
    config = SampleConfig(top_k_groups=args.top_k, head_shortcut="strict", group_size="members")

    load = os.getloadavg()
    train = train_rows(args.corpus)
    ids = train["id"].to_numpy()
    times = {}
    if args.embed:
        embed_config = EmbedConfig(args.encoder, args.batch_size, args.tfidf_components, None)
        (p, r), times["embed"] = timed(
            embed.embed_corpus,
            train["prompt"].tolist(),
            train["response"].tolist(),
            embed_config,
            threads=args.threads,
            progress=False,
        )
        embed.save_embeddings(args.embeddings, ids, p, r)
    emb_ids, prompts, responses = embed.load_embeddings(args.embeddings)
    assert np.array_equal(emb_ids, ids), "embeddings do not belong to this corpus"

    (idx, sims), times["neighbours"] = timed(neighbours.top_k_neighbours, prompts, args.k)
    pools = pools_from_lists(list(idx))
    if args.eps is None:
        rule = assess.AssessConfig(
            "dbscan", "neighbours", None, schema_default("assess", "eps_quantile"), None
        )
        args.eps = assess.dbscan_eps(rule, responses, pools)
    labels, times["assess (vectorised)"] = timed(assess.dbscan_groups, responses, pools, args.eps)
    (table, stats), times["sample isaac (vectorised)"] = timed(
        sample.sample, Run("isaac", args.tau, args.m, 0), train, config, pools, labels
    )
    ref_labels, times["assess (per-query sklearn DBSCAN)"] = timed(
        assess.dbscan_groups_reference, responses, pools, args.eps
    )
    ref_targets, times["assess + sample (per-query loop)"] = timed(
        reference_loop, responses, pools, args.eps, ids, args.tau, args.m, args.top_k, 0
    )
    vectorised = times["assess (vectorised)"] + times["sample isaac (vectorised)"]
    result = {
        "machine": machine(),
        "n_queries": int(len(pools)),
        "k": int(idx.shape[1]),
        "eps": args.eps,
        "times_s": {key: round(value, 3) for key, value in times.items()},
        "speedup_assess_sample": round(times["assess + sample (per-query loop)"] / vectorised, 1),
        "speedup_assess": round(
            times["assess (per-query sklearn DBSCAN)"] / times["assess (vectorised)"], 1
        ),
        "same_partition_as_sklearn": bool(np.array_equal(labels, ref_labels)),
        "isaac_oracle_safe_rate": stats["oracle_safe_rate"],
    }
    print(
        f"machine: {result['machine']}; {result['n_queries']} queries, k={result['k']}, "
        f"eps={args.eps}"
    )
    print("| step | seconds |\n|---|---|")
    for key, value in result["times_s"].items():
        print(f"| {key} | {value:.2f} |")
    print(
        f"\nspeed-up assess+sample: {result['speedup_assess_sample']}x; assess alone: "
        f"{result['speedup_assess']}x; same partition as sklearn: "
        f"{result['same_partition_as_sklearn']}"
    )
    if args.eps_sweep:
        result["eps_sweep"] = eps_sweep(train, responses, pools, args.eps_sweep, config)
        table = eps_sweep_table(result["eps_sweep"])
        print("\n" + table.to_string(index=False))
        if args.eps_csv:
            table.to_csv(args.eps_csv, index=False)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        record(
            "sampling_in_process",
            result["speedup_assess_sample"],
            "x (per-query loop s / vectorised assess + sample s, in one process)",
            "python " + " ".join(sys.argv),
            load_average_before=[round(x, 2) for x in load],
            **{key: result[key] for key in result if key not in ("machine", "eps_sweep")},
        )
        write_tables()


if __name__ == "__main__":
    main()
