"""Job time and peak memory per rule of one workflow run, from Snakemake's benchmark files.

Every rule writes `benchmarks/{corpus}/{rule}/...tsv` (its `benchmark:` directive); this sums
them per rule for one corpus (one results folder), so a committed run states what it cost:

    .venv/bin/python bench/rule_times.py benchmarks/diasafety \
        --csv docs/results/diasafety-seeds/rule_times.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def rule_times(corpus_benchmarks: Path) -> pd.DataFrame:
    """Jobs, summed seconds, summed CPU seconds and peak max_rss (MB) per rule."""
    rows = []
    for tsv in sorted(corpus_benchmarks.rglob("*.tsv")):
        stats = pd.read_csv(tsv, sep="\t")
        rows.append(
            {
                "rule": tsv.relative_to(corpus_benchmarks).parts[0].removesuffix(".tsv"),
                "s": stats["s"].sum(),
                "cpu_s": stats["cpu_time"].sum() if "cpu_time" in stats else float("nan"),
                "max_rss_mb": stats["max_rss"].max(),
            }
        )
    if not rows:
        raise SystemExit(f"{corpus_benchmarks}: no benchmark files")
    return (
        pd.DataFrame(rows)
        .groupby("rule")
        .agg(
            jobs=("s", "size"),
            seconds=("s", "sum"),
            cpu_seconds=("cpu_s", "sum"),
            peak_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", type=Path, help="benchmarks/{corpus} of a run")
    parser.add_argument("--csv", type=Path, help="write the table here (else print it)")
    args = parser.parse_args()
    table = rule_times(args.benchmarks).round(1)
    if args.csv:
        table.to_csv(args.csv, index=False)
    else:
        print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
