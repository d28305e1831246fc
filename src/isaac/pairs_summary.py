"""Preference pairs side by side: one row per statistics file of the pairs stage, as a CSV.

How often a pair's chosen response is labelled safe and its rejected one unsafe, against the
reverse and against random pairs of the same pools (labels used to report only), overall and
per category of the example (docs/sampling.md, "Preference pairs"):

    python -m isaac.pairs_summary results/diasafety/pairs/*/*.json --csv pairs.csv
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from isaac.cli import run
from isaac.runs import PAIR_METHODS
from isaac.targets_summary import stats_table_cli

NONE = "—"


def shares(agreement: dict | None) -> str:
    """'agree / reverse' to three decimals, a dash without labelled pairs."""
    if not agreement or agreement["agree"] is None:
        return NONE
    return f"{agreement['agree']:.3f} / {agreement['reverse']:.3f}"


def pairs_summary(stats: Sequence[dict]) -> pd.DataFrame:
    """One row per run, in method, tau, m, seed order: its examples with and without a pair,
    the agreement of its pairs and of random pairs of the same pools (each 'agree / reverse'),
    per category the pairs' agreement, and the share of pairs that reject the own response."""
    methods = list(PAIR_METHODS)
    categories = sorted({c for s in stats for c in s["agreement_by_category"] or {}})
    rows = []
    for s in sorted(stats, key=lambda s: (methods.index(s["method"]), s["tau"], s["m"], s["seed"])):
        by_category = s["agreement_by_category"] or {}
        rows.append(
            {
                "method": s["method"],
                "tau": f"{s['tau']:g}",
                "m": s["m"],
                "seed": s["seed"],
                "examples": s["n"],
                "without pair": s["n_without_pair"],
                "pairs agree / reverse": shares(s["agreement"]),
                "random agree / reverse": shares(s["random_agreement"]),
                **{c: shares(by_category.get(c)) for c in categories},
                "rejected own": f"{s['rejected_own_share']:.3f}",
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> None:
    stats_table_cli(
        argv,
        __doc__.splitlines()[0],
        "pairs/{method}/tau{tau}-m{m}-seed{seed}.json",
        PAIR_METHODS,
        "pairs",
        pairs_summary,
    )


if __name__ == "__main__":
    run(main)
