"""The judges side by side, from their metrics.json files (isaac.judge), as one CSV table.

Val decides which judge is primary; test, and the test contexts unseen in train, report how
good each is on text it never saw:

    python -m isaac.judge_table docs/results/judges-diasafety/cross-minilm_metrics.json \
        docs/results/judges-diasafety/tfidf-lr_metrics.json ... \
        --csv docs/results/judges-diasafety/judges.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from isaac.cli import run
from isaac.io import InputError, atomic_path, read_json

NONE = "—"


def score(block: dict | None, key: str) -> str:
    """A metric with three decimals, a dash where the fit has no such block."""
    return NONE if block is None else f"{block[key]:.3f}"


def judges_table(metrics: Sequence[dict]) -> pd.DataFrame:
    """One row per judge: what it was fitted on, its val AUROC and balanced accuracy (at the
    val threshold), its test AUROC, and AUROC and balanced accuracy on the unseen test contexts.
    A held-out judge is fitted on val and on part of test, so those two columns are dashes."""
    rows = []
    for m in metrics:
        if m["fit"] not in ("train", "heldout"):
            raise InputError(f"a judge's metrics with fit {m['fit']!r}: not train or heldout")
        train = m["fit"] == "train"
        rows.append(
            {
                "judge": m["features"],
                "fit": m["fit"],
                "rows fitted on": m["n_train"] if train else m["n_fit"],
                "val AUROC": score(m.get("val"), "auroc"),
                "val balanced accuracy": score(m.get("val"), "balanced_accuracy"),
                "test AUROC": score(m if train else None, "auroc"),
                "unseen AUROC": score(m["unseen"], "auroc"),
                "unseen balanced accuracy": score(m["unseen"], "balanced_accuracy"),
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics", nargs="+", help="metrics.json of each judge, in the table's order")
    p.add_argument("--csv", required=True)
    args = p.parse_args(argv)
    table = judges_table([read_json(path) for path in args.metrics])
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)


if __name__ == "__main__":
    run(main)
