"""The tables of docs/benchmarks.md, rendered from the measurements the bench scripts recorded.

The scripts record raw numbers (docs/benchmarks.json, docs/results/train-cpu.json,
docs/results/gpu-train.json); this module turns them into the CSV files under docs/benchmarks/
that docs/benchmarks.md quotes (`isaac.doctables`), each cell spelled with the rounding the page
shows, so no table there is typed by hand. The scripts call `write_tables` after recording, and

    .venv/bin/python bench/tables.py

rewrites every table from the committed measurements without measuring anything. A table whose
measurement has not been recorded yet is not written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SAMPLING_STAGES = ("neighbours", "assess", "sample")
# The keys of bench/sampling_vs_loop.py: the hand-built MiniLM commands of an earlier version,
# then the workflow's commands of config/diasafety.yaml alone and with diasafety-minilm.yaml.
SAMPLING_VS_LOOP_KEYS = ("sampling_vs_loop", "sampling_vs_loop_default", "sampling_vs_loop_minilm")


def demo_rules(benchmarks: dict) -> pd.DataFrame | None:
    """Per rule of the whole demo (bench/bench_demo.py): jobs, summed seconds, peak memory."""
    entry = benchmarks.get("demo_wall_s")
    if entry is None:
        return None
    return pd.DataFrame(
        {
            "rule": row["rule"],
            "jobs": row["jobs"],
            "seconds": f"{row['seconds']:.1f}",
            "peak_rss_mb": f"{row['peak_rss_mb']:.1f}",
        }
        for row in entry["rules"]
    )


def sampling_steps(benchmarks: dict) -> pd.DataFrame | None:
    """Per step of bench/bench_sample.py (in one process): seconds."""
    entry = benchmarks.get("sampling_in_process")
    if entry is None:
        return None
    return pd.DataFrame(
        {"step": step, "seconds": f"{seconds:.2f}"} for step, seconds in entry["times_s"].items()
    )


def sampling_vs_loop(benchmarks: dict, key: str) -> pd.DataFrame | None:
    """Per repetition of a bench/sampling_vs_loop.py key: each stage process, the loop, their
    ratio."""
    entry = benchmarks.get(key)
    if entry is None:
        return None
    per_stage = entry["per_stage_s"]
    rows = []
    for i, (stages, loop, here) in enumerate(
        zip(entry["stages_s"], entry["loop_s"], entry["in_process_s"], strict=True)
    ):
        rows.append(
            {
                "repetition": i + 1,
                **{f"{stage} s": f"{per_stage[stage][i]:.2f}" for stage in SAMPLING_STAGES},
                "stages s": f"{stages:.2f}",
                "loop s": f"{loop:.1f}",
                "ratio": f"{loop / stages:.1f}",
                "the three `main`s in-process s": f"{here:.2f}",
            }
        )
    return pd.DataFrame(rows)


def train_cpu(result: dict) -> pd.DataFrame:
    """Per generator of bench/train_throughput.py: tokens/s with 1 and 2 processes, s/step."""
    rows = []
    for generator, runs in result["rows"].items():
        one, two = runs["1proc"], runs["2proc"]
        baseline = runs.get("baseline_1proc")
        rows.append(
            {
                "generator": generator,
                "batch": one["batch_size"],
                "1 process: tokens/s": f"{one['tokens_per_s']:,.0f}",
                "2 processes: tokens/s": f"{two['tokens_per_s']:,.0f}",
                "2 / 1 processes": f"{two['tokens_per_s'] / one['tokens_per_s']:.2f}x",
                "s/step, Trainer engine": f"{one['seconds_per_step']:.3f}",
                "s/step, previous loop": f"{baseline['seconds_per_step']:.3f}" if baseline else "-",
            }
        )
    return pd.DataFrame(rows)


def gpu_train(result: dict) -> pd.DataFrame:
    """Per batch size of bench/gpu_train.py: step time, tokens, model FLOP/s and MFU."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return pd.DataFrame(
        {
            "batch": row["batch_size"],
            "median step (s)": f"{row['median_step_s']:.3f}",
            "tokens/step": f"{row['tokens_per_step']:,.0f}",
            "tokens/s": f"{row['tokens_per_s']:,.0f}",
            "model TFLOP/s": f"{row['model_tflops_per_s']:.2f}",
            "MFU fp32": share(row["mfu_fp32"]),
            "MFU bf16": share(row["mfu_bf16"]),
        }
        for row in result["rows"]
    )


def corpus_stages(benchmarks: dict) -> pd.DataFrame | None:
    """The n-gram tables against nltk + Counter, tokenisation in 2 processes against 1."""
    ngrams, tokenize = benchmarks.get("ngrams_vs_counter"), benchmarks.get("tokenize_2_processes")
    if ngrams is None or tokenize is None:
        return None
    return pd.DataFrame(
        [
            {
                "key": "ngrams_vs_counter",
                "work": f"{ngrams['ngrams']:,} n-grams",
                "isaac": f"{ngrams['seconds']:.3f} s",
                "baseline": f"{ngrams['baseline_seconds']:.3f} s",
                "ratio": f"{ngrams['ratio']:.2f}x",
            },
            {
                "key": "tokenize_2_processes",
                "work": f"{tokenize['tokens']:,} tokens, {tokenize['distinct_texts']:,} texts",
                "isaac": f"{tokenize['value']:,.0f} tokens/s",
                "baseline": f"{tokenize['baseline']:,.0f} tokens/s",
                "ratio": f"{tokenize['ratio']:.2f}x",
            },
        ]
    )


def workflow_overhead(benchmarks: dict) -> pd.DataFrame | None:
    """Per SLURM case of bench/overhead.py: dry run and no-op rerun, with and without the
    local-run setting (the keys' value and baseline)."""
    cases = sorted(
        key.removeprefix("workflow_dry_run_")
        for key in benchmarks
        if key.startswith("workflow_dry_run_")
    )
    if not cases:
        return None
    rows = []
    for case in cases:
        dry, noop = (
            benchmarks[f"workflow_dry_run_{case}"],
            benchmarks[f"workflow_noop_rerun_{case}"],
        )
        for started, field in (("SLURM_CONF=/dev/null", "value"), ("plainly", "baseline")):
            rows.append(
                {
                    "case": case,
                    "started": started,
                    "dry run s": f"{dry[field]:.2f}",
                    "no-op rerun s": f"{noop[field]:.2f}",
                    "load average (dry run / no-op)": (
                        f"{dry['load_average']:.2f} / {noop['load_average']:.2f}"
                    ),
                }
            )
    return pd.DataFrame(rows)


def slowest_tests(benchmarks: dict) -> pd.DataFrame | None:
    """The ten slowest tests of bench/slowest_tests.py's run of `make test`."""
    if "test_suite" not in benchmarks:
        return None
    return pd.DataFrame(
        [
            {"test": row["test"], "seconds": f"{row['seconds']:.1f}"}
            for row in benchmarks["test_suite"]["slowest"]
        ]
    )


TABLES: dict[str, tuple[str, Callable[[dict], pd.DataFrame | None]]] = {
    "demo_rules.csv": ("docs/benchmarks.json", demo_rules),
    "sampling_steps.csv": ("docs/benchmarks.json", sampling_steps),
    **{
        f"{key}.csv": ("docs/benchmarks.json", partial(sampling_vs_loop, key=key))
        for key in SAMPLING_VS_LOOP_KEYS
    },
    "train_cpu.csv": ("docs/results/train-cpu.json", train_cpu),
    "gpu_train.csv": ("docs/results/gpu-train.json", gpu_train),
    "corpus_stages.csv": ("docs/benchmarks.json", corpus_stages),
    "workflow_overhead.csv": ("docs/benchmarks.json", workflow_overhead),
    "slowest_tests.csv": ("docs/benchmarks.json", slowest_tests),
}
"""Table file under docs/benchmarks/: (measurements file, its renderer; None: not recorded)."""


def write_tables(root: Path = REPO) -> list[Path]:
    """Write every table whose measurements `root` holds; return the files written."""
    written = []
    for name, (source, render) in TABLES.items():
        path = root / source
        table = render(json.loads(path.read_text())) if path.is_file() else None
        if table is None:
            continue
        out = root / "docs" / "benchmarks" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        written.append(out)
    return written


if __name__ == "__main__":
    for path in write_tables():
        print(path.relative_to(REPO))
