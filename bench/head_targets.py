"""The responses a method picks most often as targets, per category of the query example.

Shows which responses form the heads that sampling prefers (and whether a head is a family of
near-copies), with their labels, from one run's targets and the corpus:

    .venv/bin/python bench/head_targets.py results/diasafety --run isaac/tau1.0-m1-seed0 --top 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from isaac.runs import RUN, fmt_tau  # noqa: E402


def most_picked(results: Path, run: str, top: int) -> pd.DataFrame:
    """Per category: the `top` most-picked target rows with their pick counts and labels."""
    corpus = pd.read_parquet(results / "corpus.parquet")
    train = corpus[corpus["split"] == "train"].set_index("id")
    targets = pd.read_parquet(results / "targets" / f"{run}.parquet")
    picks = targets[["id", "target_ids"]].explode("target_ids")
    picks["category"] = picks["id"].map(train["category"])
    counts = picks.groupby(["category", "target_ids"]).size().rename("picks").reset_index()
    counts = counts.sort_values(["category", "picks"], ascending=[True, False])
    head = counts.groupby("category").head(top)
    return head.assign(label=head["target_ids"].map(train["label"]),
                       response=head["target_ids"].map(train["response"]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results/{corpus}")
    parser.add_argument("--run", default=RUN.format(method="isaac", tau=fmt_tau(1), m=1, seed=0))
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        print(most_picked(args.results, args.run, args.top).to_string(index=False))


if __name__ == "__main__":
    main()
