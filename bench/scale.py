"""Ingest -> isaac targets on synthetic corpora of growing size, with the fast options.

The corpus: DiaSafety train pairs drawn with replacement, half of them kept verbatim (repeated
pairs, as crawled dialogue has) and half perturbed (a word dropped, two neighbouring words
swapped, or a filler word added), so lengths, vocabulary, label mix and duplication stay those
of DiaSafety. It is written as a Parquet corpus under build/scale/ (git-ignored) with a config
that layers model2vec embeddings, HNSW neighbours and DBSCAN eps 0.75 on the schema's
defaults; Snakemake then runs ingest -> embed -> neighbours -> assess -> sample for the `isaac`
targets, and each job's benchmark file gives its wall time and peak resident memory.

    .venv/bin/python bench/scale.py --source results/diasafety/corpus.parquet \
        --sizes 10000 100000 1000000 --record

(`--source` is the ingested DiaSafety corpus: `snakemake --cores 2 results/diasafety/corpus.parquet
--configfile config/diasafety.yaml`.) Writes docs/benchmarks/scale.md and scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "src")]
from isaac.runs import RUN, fmt_tau  # noqa: E402
from record import BENCHMARKS_JSON, record  # noqa: E402

WORK = REPO / "build" / "scale"
DOCS = REPO / "docs" / "benchmarks"
STAGES = ("ingest", "embed", "neighbours", "assess", "sample")
FILLERS = ("well", "really", "just", "so", "okay", "yeah", "actually", "like")


def perturb(text: str, rng: np.random.Generator) -> str:
    """One small edit: drop a word, swap two neighbouring words, or add a filler word."""
    words = text.split()
    if len(words) < 2:
        return f"{text} {FILLERS[rng.integers(len(FILLERS))]}".strip()
    edit, at = rng.integers(3), int(rng.integers(len(words) - 1))
    if edit == 0:
        del words[at]
    elif edit == 1:
        words[at], words[at + 1] = words[at + 1], words[at]
    else:
        words.insert(at, FILLERS[rng.integers(len(FILLERS))])
    return " ".join(words)


def synthetic_corpus(
    source: pd.DataFrame, n_pairs: int, seed: int = 0, verbatim_share: float = 0.5
) -> pd.DataFrame:
    """n_pairs (prompt, response, label, category) rows resampled from `source`, half of them
    perturbed; split train (90%), val and test (5% each)."""
    rng = np.random.default_rng(seed)
    rows = source.iloc[rng.integers(0, len(source), size=n_pairs)].reset_index(drop=True)
    edited = rng.random(n_pairs) >= verbatim_share
    prompts, responses = rows["prompt"].to_numpy(object), rows["response"].to_numpy(object)
    which = rng.integers(0, 2, size=n_pairs)  # perturb the prompt (0) or the response (1)
    for i in np.flatnonzero(edited):
        if which[i] == 0:
            prompts[i] = perturb(prompts[i], rng)
        else:
            responses[i] = perturb(responses[i], rng)
    split = np.where(
        rng.random(n_pairs) < 0.9, "train", np.where(rng.random(n_pairs) < 0.5, "val", "test")
    )
    return pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n_pairs)],
            "split": split,
            "prompt": prompts,
            "response": responses,
            "label": rows["label"].to_numpy(object),
            "category": rows["category"].to_numpy(object),
        }
    )


def write_inputs(source: pd.DataFrame, n_pairs: int, k: int, index: str) -> tuple[Path, str]:
    """The corpus and its config for one size; returns (config path, corpus name)."""
    name = f"scale-{n_pairs}"
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / f"{name}.parquet"
    if not corpus.is_file():
        synthetic_corpus(source, n_pairs).to_parquet(corpus, index=False)
    config = {
        "corpus": {
            "name": name,
            "format": "parquet",
            "path": str(corpus.relative_to(REPO)),
            "fields": {"id": "id", "split": "split", "label": "label", "category": "category"},
            "empty_responses": "keep",
        },
        "embed": {"encoder": "model2vec"},
        "neighbours": {"k": k, "index": index},
        "assess": {"assessor": "dbscan", "eps": 0.75},
    }
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, name


def run_workflow(config: Path, name: str, model2vec: Path | None, cores: int) -> float:
    """Snakemake up to the isaac targets; returns wall seconds. A distilled model2vec folder,
    when given, is copied in (it depends on no corpus and costs the same at every size)."""
    results = REPO / "results" / name
    for folder in (results, REPO / "benchmarks" / name):  # every stage measured afresh
        shutil.rmtree(folder, ignore_errors=True)
    if model2vec is not None:
        shutil.copytree(model2vec, results / "encoders" / "model2vec")
    run = RUN.format(method="isaac", tau=fmt_tau(1), m=1, seed=0)
    target = results / "targets" / f"{run}.parquet"
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        str(target.relative_to(REPO)),
        "--configfile",
        str(config.relative_to(REPO)),
        "--rerun-triggers",
        "mtime",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stage_benchmarks(name: str) -> dict[str, dict[str, float]]:
    """{stage: {seconds, cpu_s, peak_rss_mb}} from Snakemake's benchmark files of one corpus
    (CPU seconds tell what a job would take on idle cores when others share the machine)."""
    folder = REPO / "benchmarks" / name
    out = {}
    for stage in STAGES:
        files = sorted(folder.glob(f"{stage}.tsv")) + sorted(folder.glob(f"{stage}/**/*.tsv"))
        if files:
            table = pd.concat([pd.read_csv(f, sep="\t") for f in files])
            out[stage] = {
                "seconds": float(table["s"].sum()),
                "cpu_s": float(table["cpu_time"].sum()),
                "peak_rss_mb": float(table["max_rss"].max()),
            }
    return out


def recorded_sizes() -> dict[int, dict]:
    """{pairs: {wall_s, stages}} of every size recorded in docs/benchmarks.json."""
    data = json.loads(BENCHMARKS_JSON.read_text()) if BENCHMARKS_JSON.is_file() else {}
    return {
        int(key.split("_")[1]): {
            "wall_s": entry["workflow_wall_s"],
            "stages": entry["stages"],
            "load_average_before": entry["load_average_before"],
            "command": entry["command"],
        }
        for key, entry in data.items()
        if key.startswith("scale_") and key.endswith("_pairs")
    }


def write_docs(results: dict[int, dict], command: str) -> None:
    """docs/benchmarks/scale.md (table) and scale.png (log-log seconds per stage vs pairs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    DOCS.mkdir(parents=True, exist_ok=True)
    sizes = sorted(results)
    lines = [
        "| pairs | "
        + " | ".join(f"{s} s (peak MB)" for s in STAGES)
        + " | stages s | workflow wall s | load average |",
        "|---:|" + "---:|" * (len(STAGES) + 3),
    ]
    for n in sizes:
        stages = results[n]["stages"]
        cells = [
            f"{stages[s]['seconds']:.1f} ({stages[s]['peak_rss_mb']:.0f})" if s in stages else "-"
            for s in STAGES
        ]
        total = sum(stage["seconds"] for stage in stages.values())
        lines.append(
            f"| {n:,} | "
            + " | ".join(cells)
            + f" | {total:.0f} | {results[n]['wall_s']:.0f} |"
            + f" {results[n]['load_average_before'][0]:.1f} |"
        )
    commands = sorted({results[n].get("command", command) for n in sizes})
    (DOCS / "scale.md").write_text(
        "# Ingest -> isaac targets at growing size\n\nRegenerate (from the repository root):\n\n"
        + "".join(f"    {c}\n" for c in commands)
        + "\n"
        + "\n".join(lines)
        + "\n"
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for stage in STAGES:
        xs = [n for n in sizes if stage in results[n]["stages"]]
        ax.plot(xs, [results[n]["stages"][stage]["seconds"] for n in xs], "o-", label=stage)
    ax.plot(sizes, [results[n]["wall_s"] for n in sizes], "k--", label="workflow (wall)")
    first = results[sizes[0]]["wall_s"]
    ax.plot(sizes, [first * n / sizes[0] for n in sizes], ":", color="grey", label="linear")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="pairs",
        ylabel="seconds",
        title="model2vec + hnsw, 2 cores",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "scale.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="an ingested corpus.parquet (DiaSafety)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--index", default="hnsw", choices=["exact", "hnsw"])
    parser.add_argument("--model2vec", type=Path, help="a distilled encoders/model2vec folder")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args()
    source = pd.read_parquet(args.source)
    source = source[source["split"] == "train"]
    command = "python " + " ".join(sys.argv)
    results = {}
    for n in args.sizes:
        config, name = write_inputs(source, n, args.k, args.index)
        load = os.getloadavg()
        wall = run_workflow(config, name, args.model2vec, args.cores)
        results[n] = {
            "wall_s": wall,
            "stages": stage_benchmarks(name),
            "command": command,
            "load_average_before": [round(x, 2) for x in load],
        }
        print(json.dumps({n: results[n]}), flush=True)
        if args.record:
            stages = results[n]["stages"]
            record(
                f"scale_{n}_pairs",
                round(sum(s["seconds"] for s in stages.values()), 1),
                "s (stage jobs ingest..sample, summed)",
                command,
                peak_rss_mb=max(s["peak_rss_mb"] for s in stages.values()),
                stages=stages,
                workflow_wall_s=round(wall, 1),
                load_average_before=results[n]["load_average_before"],
            )
        write_docs({**recorded_sizes(), **results}, command)


if __name__ == "__main__":
    main()
