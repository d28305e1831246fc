"""Summary table and figures over all runs of a sweep.

`summary` joins every run's scores with its targets' statistics (oracle safe rate) and the
judge's test metrics: summary.csv (one row per method, tau, m, seed) and summary.md (means with
95% t-intervals over seeds). `figures` only reads summary.csv, so plotting options never force
anything upstream to rerun.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from isaac.cli import run
from isaac.io import InputError, atomic_path, read_json
from isaac.plots import FigureConfig, plt, save_png
from isaac.runs import METHODS
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.report")
KEYS = ["method", "tau", "m", "seed"]
METRICS = ["oracle_safe_rate", "safety_score", "unsafe_rate", "mean_unsafe_prob",
           "lexical_unsafe_rate", "distinct_1", "distinct_2", "mean_len", "ppl"]


def summary_table(scores: list[str], targets: list[str], judge_metrics: str | None) -> pd.DataFrame:
    """One row per run; scores[i] and targets[i] belong to the same run."""
    if len(scores) != len(targets):
        raise InputError("summary: the score and target stats lists differ in length")
    judge = read_json(judge_metrics) if judge_metrics else {}
    rows = []
    for s_path, t_path in zip(scores, targets):
        s, t = read_json(s_path), read_json(t_path)
        missing = [k for k in KEYS + ["safety_score"] if k not in s]
        if missing:
            raise InputError(f"{s_path}: missing key(s) {', '.join(missing)}")
        row = {k: s[k] for k in KEYS}
        row.update({k: s.get(k) for k in METRICS if k in s})
        row["oracle_safe_rate"] = t.get("oracle_safe_rate")
        row["original_safe_rate"] = t.get("original_safe_rate")
        row["head_shortcut_share"] = t.get("head_shortcut_share")
        row["judge_auroc"] = judge.get("auroc")
        row["judge_accuracy"] = judge.get("accuracy")
        rows.append(row)
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHODS)}
    df["_o"] = df["method"].map(order).fillna(len(order))
    df = df.sort_values(["_o", "tau", "m", "seed"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def t_interval(values) -> tuple[float, float, int]:
    """Mean and 95% t half-width over seeds; half-width NaN with one value."""
    v = np.asarray([x for x in values if x is not None and not pd.isna(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


def means_table(df: pd.DataFrame, metrics=("oracle_safe_rate", "safety_score", "distinct_1",
                                           "distinct_2", "mean_len", "ppl")) -> pd.DataFrame:
    """Per (method, tau, m): n seeds, and mean / half-width of each metric."""
    rows = []
    for (method, tau, m), g in df.groupby(["method", "tau", "m"], sort=False):
        row = {"method": method, "tau": tau, "m": m, "n": len(g)}
        for k in metrics:
            if k in g:
                row[k], row[f"{k}_ci"], _ = t_interval(g[k].tolist())
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean: float, half: float) -> str:
    if pd.isna(mean):
        return "—"
    digits = 1 if abs(mean) >= 10 else 3
    return f"{mean:.{digits}f} ± {'—' if pd.isna(half) else f'{half:.{digits}f}'}"


def summary_markdown(df: pd.DataFrame, judge_metrics: dict | None = None) -> str:
    means = means_table(df)
    metrics = [c for c in ("oracle_safe_rate", "safety_score", "distinct_1", "distinct_2",
                           "mean_len", "ppl") if c in means]
    lines = ["# ISAAC summary", ""]
    if judge_metrics:
        auroc, acc = judge_metrics.get("auroc"), judge_metrics.get("accuracy")
        lines += [f"Judge on the test split: AUROC {auroc if auroc is None else f'{auroc:.3f}'}, "
                  f"accuracy {acc if acc is None else f'{acc:.3f}'} "
                  f"(n = {judge_metrics.get('n')}).", ""]
    lines += ["Means over seeds ± 95% t-interval half-width (— : one seed, n = 1).", ""]
    header = ["method", "tau", "m", "n", *metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in means.iterrows():
        cells = [str(r["method"]), f"{r['tau']:g}", str(r["m"]), str(r["n"])]
        cells += [_fmt(r[k], r[f"{k}_ci"]) for k in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(scores, targets, judge_metrics, out_csv, out_md) -> pd.DataFrame:
    df = summary_table(scores, targets, judge_metrics)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    md = summary_markdown(df, read_json(judge_metrics) if judge_metrics else None)
    with atomic_path(out_md) as tmp:
        tmp.write_text(md)
    return df


# ---------------------------------------------------------------- figures


def _per_method(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    rows = []
    for (method, tau, m), g in df.groupby(["method", "tau", "m"], sort=False):
        xm, xh, _ = t_interval(g[x].tolist())
        ym, yh, n = t_interval(g[y].tolist())
        rows.append({"method": method, "tau": tau, "m": m, "x": xm, "xerr": xh, "y": ym,
                     "yerr": yh, "n": n})
    return pd.DataFrame(rows)


def scatter(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str, out,
            dpi: int, diagonal: bool = False) -> None:
    """One marker per (method, tau, m): mean over seeds with 95% error bars when n > 1."""
    pts = _per_method(df, x, y)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    methods = [m for m in METHODS if m in set(pts["method"])] + sorted(
        set(pts["method"]) - set(METHODS))
    for i, method in enumerate(methods):
        p = pts[pts["method"] == method]
        ax.errorbar(p["x"], p["y"], xerr=p["xerr"].fillna(0), yerr=p["yerr"].fillna(0),
                    fmt="os^vDPX"[i % 7], color=f"C{i}", label=method, capsize=3, ms=7)
        for _, r in p.iterrows():
            if len(p) > 1:
                ax.annotate(f"τ={r['tau']:g}, m={r['m']}", (r["x"], r["y"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
    if diagonal:
        lo = max(0.0, min(pts["x"].min(), pts["y"].min()) - 0.05)
        ax.plot([lo, 1], [lo, 1], ls=":", color="grey", lw=1, label="y = x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, out, dpi)


def figures(summary_csv, out_safety_distinct, out_oracle_model, dpi: int) -> None:
    df = pd.read_csv(summary_csv)
    if df.empty:
        raise InputError(f"{summary_csv}: no runs to plot")
    scatter(df, "distinct_2", "safety_score", "distinct-2 of generations",
            "safety score (1 − judge unsafe rate)", "Safety vs diversity per method",
            out_safety_distinct, dpi)
    scatter(df, "oracle_safe_rate", "safety_score", "oracle safe rate of training targets",
            "safety score of the trained model", "Target safety vs model safety",
            out_oracle_model, dpi, diagonal=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Summary table and figures of a sweep.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="summary.csv + summary.md")
    s.add_argument("--scores", nargs="+", required=True)
    s.add_argument("--targets", nargs="+", required=True, help="targets stats JSON, same order")
    s.add_argument("--judge-metrics", default=None)
    s.add_argument("--csv", required=True)
    s.add_argument("--md", required=True)
    f = sub.add_parser("figures", help="safety_vs_distinct2 + oracle_vs_model_safety")
    f.add_argument("--summary", required=True)
    add_config_argument(f, FigureConfig)
    f.add_argument("--safety-vs-distinct2", required=True)
    f.add_argument("--oracle-vs-model-safety", required=True)
    args = p.parse_args(argv)
    if args.cmd == "summary":
        df = write_summary(args.scores, args.targets, args.judge_metrics, args.csv, args.md)
        log.info("%d runs -> %s, %s", len(df), args.csv, args.md)
    else:
        config = parse(FigureConfig, args.config)
        figures(args.summary, args.safety_vs_distinct2, args.oracle_vs_model_safety, config.dpi)
        log.info("wrote %s, %s", args.safety_vs_distinct2, args.oracle_vs_model_safety)


if __name__ == "__main__":
    run(main)
