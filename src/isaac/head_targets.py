"""The responses a method picks most often as targets, per category of the query example.

Shows which responses form the heads that sampling prefers (and whether a head is a family of
near-copies), with their labels, from one run's targets and the corpus:

    python -m isaac.head_targets results/diasafety --run isaac/tau1.0-m1-seed0 --top 3

prints them, or writes them to `--csv`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from isaac.cli import run
from isaac.io import atomic_path, read_table
from isaac.runs import RUN, fmt_tau


def most_picked(corpus: pd.DataFrame, targets: pd.DataFrame, top: int) -> pd.DataFrame:
    """Per category: the `top` most-picked train rows (ties by id) with pick counts, labels
    and responses."""
    train = corpus[corpus["split"] == "train"].set_index("id")
    picks = targets[["id", "target_ids"]].explode("target_ids")
    picks["category"] = picks["id"].map(train["category"])
    counts = picks.groupby(["category", "target_ids"]).size().rename("picks").reset_index()
    counts = counts.sort_values(
        ["category", "picks", "target_ids"], ascending=[True, False, True], kind="stable"
    )
    head = counts.groupby("category").head(top).reset_index(drop=True)
    return head.assign(
        label=head["target_ids"].map(train["label"]),
        response=head["target_ids"].map(train["response"]),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results/{corpus}")
    parser.add_argument("--run", default=RUN.format(method="isaac", tau=fmt_tau(1), m=1, seed=0))
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--csv", type=Path, help="write the table here instead of printing it")
    args = parser.parse_args(argv)
    corpus = read_table(
        args.results / "corpus.parquet", ["id", "split", "category", "label", "response"]
    )
    targets = read_table(args.results / "targets" / f"{args.run}.parquet", ["id", "target_ids"])
    table = most_picked(corpus, targets, args.top)
    if args.csv:
        with atomic_path(args.csv) as tmp:
            table.to_csv(tmp, index=False)
        return
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        print(table.to_string(index=False))


if __name__ == "__main__":
    run(main)
