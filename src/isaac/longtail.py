"""Rank-frequency figures: does the corpus have a long tail, and is its head safer?

`responses`: frequency of each normalised train response string against its rank (log-log),
overall and per category, plus (where labels exist) the unsafe share of responses by how often
their string occurs: ISAAC's assumption is that frequent (head) responses are the safer ones.
`ngrams`: rank-frequency of the n-gram tables, one line per n.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table
from isaac.plots import ReportConfig, plt, save_png
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.longtail")

FREQ_BINS = [(1, 1), (2, 3), (4, 10), (11, 100), (101, None)]
MAX_CATEGORIES = 8


def rank_frequency(values: pd.Series) -> np.ndarray:
    """Counts of the distinct values, largest first (rank r is position r-1)."""
    return np.sort(values.value_counts().to_numpy())[::-1]


def unsafe_by_frequency(strings: pd.Series, labels: pd.Series) -> pd.DataFrame:
    """Unsafe share of labelled responses, binned by how often their string occurs."""
    freq = strings.map(strings.value_counts())
    rows = []
    for lo, hi in FREQ_BINS:
        mask = (freq >= lo) & (freq <= (hi if hi is not None else np.inf)) & labels.notna()
        if mask.any():
            name = f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi else f">{lo - 1}")
            rows.append(
                {
                    "bin": name,
                    "n": int(mask.sum()),
                    "unsafe": float((labels[mask] == "unsafe").mean()),
                }
            )
    return pd.DataFrame(rows, columns=["bin", "n", "unsafe"])


def plot_responses(corpus: pd.DataFrame, out, dpi: int) -> None:
    train = corpus.loc[corpus["split"] == "train"]
    if train.empty:
        raise InputError("corpus: no train rows to plot")
    strings = train["response"].map(normalise)
    labelled = train["label"].notna().any()
    fig, axes = plt.subplots(
        1, 2 if labelled else 1, figsize=(11 if labelled else 6, 4.2), squeeze=False
    )
    ax = axes[0, 0]
    freq = rank_frequency(strings)
    ax.loglog(
        np.arange(1, len(freq) + 1),
        freq,
        lw=2,
        color="black",
        label=f"all ({len(strings)} responses, {len(freq)} distinct)",
    )
    categories = train["category"].dropna()
    top = categories.value_counts().index[:MAX_CATEGORIES]
    for cat in sorted(top):
        f = rank_frequency(strings[train["category"] == cat])
        ax.loglog(np.arange(1, len(f) + 1), f, lw=1, alpha=0.8, label=str(cat))
    ax.set_xlabel("rank of normalised response string")
    ax.set_ylabel("frequency in train")
    ax.set_title("Response long tail")
    ax.legend(fontsize=7)
    if labelled:
        ax = axes[0, 1]
        table = unsafe_by_frequency(strings, train["label"])
        x = np.arange(len(table))
        ax.bar(x, table["unsafe"], color="tab:red")
        ax.set_xticks(x, table["bin"].tolist())
        for x, (u, n) in enumerate(zip(table["unsafe"], table["n"])):
            ax.text(x, u, f"n={n}", ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_xlabel("how often the response string occurs in train")
        ax.set_ylabel("unsafe share")
        ax.set_title("Head vs tail safety (gold labels)")
    fig.tight_layout()
    save_png(fig, out, dpi)


def _n_of(path: Path) -> int:
    match = re.search(r"n(\d+)\.parquet$", path.name)
    return int(match.group(1)) if match else 0


def plot_ngrams(tables: Sequence, out, dpi: int) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for path in sorted(map(Path, tables), key=_n_of):
        counts = read_table(path, ["ngram", "count"])["count"].to_numpy()
        if len(counts):
            ax.loglog(
                np.arange(1, len(counts) + 1),
                counts,
                label=f"n={_n_of(path)} ({len(counts)} distinct)",
            )
    ax.set_xlabel("rank")
    ax.set_ylabel("count in train responses")
    ax.set_title("N-gram rank-frequency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out, dpi)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m isaac.longtail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="figure", required=True)
    r = sub.add_parser("responses", help="response rank-frequency figure")
    r.add_argument("--corpus", required=True)
    g = sub.add_parser("ngrams", help="n-gram rank-frequency figure")
    g.add_argument("--tables", nargs="+", required=True, help="ngrams/n{n}.parquet files")
    for p in (r, g):
        add_config_argument(p, ReportConfig)
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = parse(ReportConfig, args.config)
    if args.figure == "responses":
        plot_responses(
            read_table(args.corpus, ["split", "response", "label", "category"]),
            args.out,
            config.dpi,
        )
    else:
        plot_ngrams(args.tables, args.out, config.dpi)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
