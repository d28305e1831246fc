"""Sampled targets side by side: one row per statistics file of the sample stage, as a CSV.

How safe (by the labels, reported only), how concentrated and how grouped each run's targets
are, overall and per category of the query example (docs/sampling.md, "Statistics"):

    python -m isaac.targets_summary results/diasafety/targets/*/*.json --csv targets.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from isaac.cli import run
from isaac.io import InputError, atomic_path, read_json
from isaac.runs import METHODS

NONE = "—"
GROUP_SIZES = ("members", "distinct", None)


def decimals(value: float | None, places: int) -> str:
    return NONE if value is None else f"{value:.{places}f}"


def order(stats: dict) -> tuple:
    """Methods in their declared order, then tau, then members before distinct group sizes."""
    return METHODS.index(stats["method"]), stats["tau"], GROUP_SIZES.index(stats["group_size"])


def targets_summary(stats: Sequence[dict]) -> pd.DataFrame:
    """One row per run: oracle safe rate overall and per category (three decimals), distinct
    share, head shortcut share, mean SI, groups per pool, share of all-singleton pools and the
    number of examples; a dash where the run has no groups (raw, sft)."""
    categories = sorted({c for s in stats for c in s["oracle_safe_rate_by_category"] or {}})
    rows = []
    for s in sorted(stats, key=order):
        by_category = s["oracle_safe_rate_by_category"] or {}
        head = s["head_group_size"]
        rows.append(
            {
                "method": s["method"],
                "tau": f"{s['tau']:g}",
                "group size": s["group_size"] or NONE,
                "oracle safe": decimals(s["oracle_safe_rate"], 3),
                **{c: decimals(by_category.get(c), 3) for c in categories},
                "distinct share": decimals(s["distinct_target_share"], 3),
                "head shortcut": decimals(s["head_shortcut_share"], 3),
                "mean SI": decimals(s["mean_si"], 3),
                "groups per pool": decimals(s["mean_n_groups"], 1),
                "all-singleton pools": decimals(head and head["singleton_share"], 3),
                "examples": s["n"],
            }
        )
    return pd.DataFrame(rows)


def stats_table_cli(argv, description: str, stats_help: str, methods, stage: str, summarise):
    """The command of a statistics table: a stage's statistics files in, summarise(stats) out as
    one CSV (--csv); statistics of a method outside `methods` are refused as not `stage`'s."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("stats", nargs="+", help=stats_help)
    p.add_argument("--csv", required=True)
    args = p.parse_args(argv)
    stats = [read_json(path) for path in args.stats]
    unknown = sorted({s.get("method") for s in stats} - set(methods), key=str)
    if unknown:
        raise InputError(f"statistics of unknown methods {unknown}: not the {stage} stage's")
    with atomic_path(args.csv) as tmp:
        summarise(stats).to_csv(tmp, index=False)


def main(argv: Sequence[str] | None = None) -> None:
    stats_table_cli(
        argv,
        __doc__.splitlines()[0],
        "targets/{method}/tau{tau}-m{m}-seed{seed}.json",
        METHODS,
        "sample",
        targets_summary,
    )


if __name__ == "__main__":
    run(main)
