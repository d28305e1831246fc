"""Summary tables and figures over all runs of a sweep.

`summary` writes three files:
- runs.csv: one row per run (method, tau, m, seed) with its scores and target statistics;
- summary.csv: one row per (method, tau, m): the safety score over every seed and unseen prompt,
  and its difference from each baseline (`summary.baselines`, by default raw and sft) with 95%
  paired bootstrap intervals. Runs are paired by (prompt, seed): the same prompts and the same
  decoding seed. Each resample draws prompts with replacement and, with several seeds, seeds
  with replacement, the same draw for every method; the interval is the 2.5-97.5 percentile
  range of the resampled means. The bootstrap is seeded (`summary.seed`, `summary.resamples`).
- summary.md: the same as a table, a difference marked * when its interval excludes 0.

`figures` only reads summary.csv, so plotting options never force anything upstream to rerun.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.bootstrap import SummaryConfig, bootstrap_interval, resample_indices
from isaac.cli import optional, run
from isaac.io import JUDGE_METRICS, InputError, atomic_path, read_json, read_table
from isaac.plots import ReportConfig, plt, save_png
from isaac.runs import METHODS
from isaac.settings import add_config_argument, parse, require

log = logging.getLogger("isaac.report")
KEYS = ["method", "tau", "m", "seed"]
SCORES = [
    "safety_score",
    "unsafe_rate",
    "mean_unsafe_prob",
    "safety_score_second",
    "judges_agreement",
    "lexical_unsafe_rate",
    "distinct_1",
    "distinct_2",
    "mean_len",
    "empty_share",
    "ppl_safe",
    "ppl",
    "safety_score_seen",
    "n",
    "n_seen",
    "polluted_generation_share",
]
TARGET_STATS = ["oracle_safe_rate", "original_safe_rate", "head_shortcut_share", "polluted_share"]
# Means over seeds reported beside the bootstrap columns of summary.csv.
MEAN_COLUMNS = [
    "oracle_safe_rate",
    "safety_score_second",
    "judges_agreement",
    "lexical_unsafe_rate",
    "distinct_1",
    "distinct_2",
    "mean_len",
    "ppl_safe",
    "ppl",
    "safety_score_seen",
    "polluted_share",
    "polluted_generation_share",
]
POLLUTION_COLUMNS = {
    "polluted targets": "polluted_share",
    "polluted generations": "polluted_generation_share",
}


def runs_table(scores: list[str], targets: list[str]) -> pd.DataFrame:
    """One row per run; scores[i] and targets[i] belong to the same run."""
    if len(scores) != len(targets):
        raise InputError("summary: the score and target stats lists differ in length")
    rows = []
    for s_path, t_path in zip(scores, targets):
        s, t = read_json(s_path), read_json(t_path)
        missing = [k for k in KEYS + ["safety_score"] if k not in s]
        if missing:
            raise InputError(f"{s_path}: missing key(s) {', '.join(missing)}")
        rows.append(
            {
                **{k: s[k] for k in KEYS},
                **{k: s.get(k) for k in SCORES},
                **{k: t.get(k) for k in TARGET_STATS},
            }
        )
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHODS)}
    df["_o"] = df["method"].map(order).fillna(len(order))
    df = df.sort_values(["_o", "tau", "m", "seed"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def unsafe_matrix(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(seeds x unseen prompts) unsafe verdicts of one (method, tau, m), and the prompt ids;
    every seed must have answered the same prompts in the same order."""
    rows, ids = [], None
    for path in paths:
        table = read_table(path, ["id", "seen", "unsafe"])
        table = table[~table["seen"].to_numpy(dtype=bool)]
        if ids is None:
            ids = table["id"].astype(str).to_numpy()
        elif not np.array_equal(ids, table["id"].astype(str).to_numpy()):
            raise InputError(f"{path}: its prompts differ from the other runs'")
        rows.append(table["unsafe"].to_numpy(dtype=float))
    return np.vstack(rows), ids


def comparison_table(
    runs: pd.DataFrame, per_prompt: dict[tuple, str], config: SummaryConfig
) -> pd.DataFrame:
    """summary.csv: one row per (method, tau, m). `per_prompt` maps (method, tau, m, seed) to
    that run's per-prompt score table."""
    groups = list(runs.groupby(["method", "tau", "m"], sort=False))
    safe, seeds_of, prompt_ids = {}, {}, None
    for key, g in groups:
        seeds = sorted(g["seed"].tolist())
        paths = [per_prompt[(*key, s)] for s in seeds]
        unsafe, ids = unsafe_matrix(paths)
        if prompt_ids is None:
            prompt_ids = ids
        elif not np.array_equal(ids, prompt_ids):
            raise InputError(f"{paths[0]}: its prompts differ from the other methods'")
        safe[key], seeds_of[key] = 1.0 - unsafe, seeds
    shapes = {v.shape for v in safe.values()}
    if len(shapes) != 1:
        raise InputError(f"summary: runs differ in seeds or prompts ({sorted(shapes)})")
    n_seeds, n_prompts = shapes.pop()
    seed_idx, prompt_idx = resample_indices(n_seeds, n_prompts, config.resamples, config.seed)
    rows = []
    for (method, tau, m), g in groups:
        values = safe[(method, tau, m)]
        row = {
            "method": method,
            "tau": tau,
            "m": m,
            "n_seeds": n_seeds,
            "n_prompts": n_prompts,
            "safety_score": float(values.mean()),
        }
        row["safety_lo"], row["safety_hi"] = bootstrap_interval(values, seed_idx, prompt_idx)
        for base in config.baselines:
            base_key = (base, 1.0, m)
            if base_key not in safe:
                raise InputError(f"summary: no {base} run with m={m} to compare with")
            if seeds_of[base_key] != seeds_of[(method, tau, m)]:
                raise InputError(f"summary: {method} and {base} ran with different seeds")
            diff = values - safe[base_key]
            row[f"delta_{base}"] = float(diff.mean())
            row[f"delta_{base}_lo"], row[f"delta_{base}_hi"] = bootstrap_interval(
                diff, seed_idx, prompt_idx
            )
        row.update({k: g[k].astype(float).mean() for k in MEAN_COLUMNS})  # NaN: not measured
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _safety(row) -> str:
    return f"{row['safety_score']:.3f} [{row['safety_lo']:.3f}, {row['safety_hi']:.3f}]"


def _difference(row, base: str) -> str:
    """delta [lo, hi], marked * when the interval excludes 0."""
    mean, lo, hi = row[f"delta_{base}"], row[f"delta_{base}_lo"], row[f"delta_{base}_hi"]
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{' *' if lo > 0 or hi < 0 else ''}"


def judge_line(name: str, metrics: dict) -> str:
    """One sentence on a judge's metrics.json: the train-fitted judge's test and unseen-context
    quality, or the independent judge's fit rows, cross-validated threshold and unseen-context
    quality (its only test rows it never saw)."""
    unseen = metrics.get("unseen") or {}
    on_unseen = (
        f"on test contexts unseen in train AUROC {_cell(unseen.get('auroc'))}, balanced "
        f"accuracy {_cell(unseen.get('balanced_accuracy'))} (n = {unseen.get('n')})."
    )
    threshold = f"threshold {_cell(metrics.get('threshold'))}"
    if metrics.get("fit") == "heldout":
        return (
            f"{name} judge ({metrics.get('features')}, independent: fitted on "
            f"{metrics.get('n_fit')} val and seen-context test rows, none a train response): "
            f"{threshold} (chosen by cross-validation on them); " + on_unseen
        )
    return (
        f"{name} judge ({metrics.get('features')}): {threshold}"
        f" (chosen on {metrics.get('threshold_from', 'val')}); test AUROC "
        f"{_cell(metrics.get('auroc'))}, balanced accuracy "
        f"{_cell(metrics.get('balanced_accuracy'))} (n = {metrics.get('n')}); " + on_unseen
    )


def summary_markdown(table: pd.DataFrame, config: SummaryConfig, judges: dict[str, dict]) -> str:
    first = table.iloc[0]
    lines = ["# ISAAC summary", ""]
    lines += [judge_line(name, metrics) for name, metrics in judges.items()]
    lines += [
        "",
        f"Safety score = share of generations the primary judge finds safe, over "
        f"{first['n_prompts']} test prompts unseen in training x {first['n_seeds']} "
        f"seed(s); [lo, hi] = 95% paired bootstrap interval ({config.resamples} resamples "
        "over prompts and seeds); * = the difference's interval excludes 0.",
        "",
    ]
    header = [
        "method",
        "tau",
        "m",
        "safety",
        *[f"Δ {b}" for b in config.baselines],
        "second judge",
        "agreement",
        "lexical",
        "distinct-2",
        "ppl (safe refs)",
        "oracle",
    ]
    # A polluted corpus (pollute.rate > 0) adds the exact-match pollution shares.
    polluted = bool(table.get("polluted_share", pd.Series(dtype=float)).fillna(0).gt(0).any())
    header += list(POLLUTION_COLUMNS) if polluted else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iterrows():
        cells = [str(r["method"]), f"{r['tau']:g}", str(r["m"]), _safety(r)]
        cells += [_difference(r, b) for b in config.baselines]
        cells += [
            _cell(r.get(k))
            for k in (
                "safety_score_second",
                "judges_agreement",
                "lexical_unsafe_rate",
                "distinct_2",
            )
        ]
        cells += [_cell(r.get("ppl_safe"), 1), _cell(r.get("oracle_safe_rate"))]
        cells += [_cell(r.get(k), 4) for k in POLLUTION_COLUMNS.values()] if polluted else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    scores,
    per_prompt,
    targets,
    judges: dict[str, str],
    config: SummaryConfig,
    out_runs,
    out_csv,
    out_md,
) -> pd.DataFrame:
    """runs.csv, summary.csv, summary.md; per_prompt[i] is the table of the run of scores[i]."""
    runs = runs_table(scores, targets)
    keys = [tuple(read_json(path)[k] for k in KEYS) for path in scores]
    table = comparison_table(runs, dict(zip(keys, per_prompt)), config)
    for df, out in ((runs, out_runs), (table, out_csv)):
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    md = summary_markdown(table, config, {name: read_json(p) for name, p in judges.items()})
    with atomic_path(out_md) as tmp:
        tmp.write_text(md)
    return table


# ---------------------------------------------------------------- figures


def scatter(
    df: pd.DataFrame, x: str, xlabel: str, title: str, out, dpi: int, diagonal: bool = False
) -> None:
    """Safety score (with its bootstrap interval) against `x`, one marker per (method, tau, m)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    if df[x].isna().all():  # e.g. no oracle safe rate on a corpus without labels
        ax.text(0.5, 0.5, f"no {xlabel}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        save_png(fig, out, dpi)
        return
    methods = [m for m in METHODS if m in set(df["method"])]
    for i, method in enumerate(methods):
        p = df[df["method"] == method]
        yerr = np.vstack([p["safety_score"] - p["safety_lo"], p["safety_hi"] - p["safety_score"]])
        ax.errorbar(
            p[x],
            p["safety_score"],
            yerr=yerr,
            fmt="os^vDPX"[i % 7],
            color=f"C{i}",
            label=method,
            capsize=3,
            ms=7,
        )
        if len(p) > 1:
            for _, r in p.iterrows():
                ax.annotate(
                    f"τ={r['tau']:g}, m={r['m']}",
                    (r[x], r["safety_score"]),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
    if diagonal:
        lo = max(0.0, min(df[x].min(), df["safety_lo"].min()) - 0.05)
        ax.plot([lo, 1], [lo, 1], ls=":", color="grey", lw=1, label="y = x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("safety score (95% paired bootstrap)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, out, dpi)


def figures(summary_csv, out_safety_distinct, out_oracle_model, dpi: int) -> None:
    df = pd.read_csv(summary_csv)
    if df.empty:
        raise InputError(f"{summary_csv}: no runs to plot")
    scatter(
        df,
        "distinct_2",
        "distinct-2 of generations",
        "Safety vs diversity per method",
        out_safety_distinct,
        dpi,
    )
    scatter(
        df,
        "oracle_safe_rate",
        "oracle safe rate of training targets",
        "Target safety vs model safety",
        out_oracle_model,
        dpi,
        diagonal=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Summary tables and figures of a sweep.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="runs.csv, summary.csv, summary.md")
    s.add_argument("--scores", nargs="+", required=True, help="scores/{run}.json")
    s.add_argument(
        "--per-prompt", nargs="+", required=True, help="scores/{run}.parquet, same order"
    )
    s.add_argument("--targets", nargs="+", required=True, help="targets stats JSON, same order")
    s.add_argument("--judge", required=True, help="the primary judge's folder (its metrics.json)")
    s.add_argument("--second-judge", type=optional(str), help="the second judge's folder")
    add_config_argument(s, SummaryConfig)
    s.add_argument("--runs", required=True, help="runs.csv")
    s.add_argument("--csv", required=True, help="summary.csv")
    s.add_argument("--md", required=True, help="summary.md")
    f = sub.add_parser("figures", help="safety_vs_distinct2 + oracle_vs_model_safety")
    f.add_argument("--summary", required=True)
    add_config_argument(f, ReportConfig)
    f.add_argument("--safety-vs-distinct2", required=True)
    f.add_argument("--oracle-vs-model-safety", required=True)
    args = p.parse_args(argv)
    if args.cmd == "summary":
        config = parse(SummaryConfig, args.config)
        require(config, "baselines")
        if len(args.per_prompt) != len(args.scores):
            raise InputError("summary: --scores and --per-prompt differ in length")
        judges = {"Primary": Path(args.judge) / JUDGE_METRICS}
        if args.second_judge:
            judges["Second"] = Path(args.second_judge) / JUDGE_METRICS
        df = write_summary(
            args.scores, args.per_prompt, args.targets, judges, config, args.runs, args.csv, args.md
        )
        log.info("%d rows -> %s, %s", len(df), args.csv, args.md)
    else:
        config = parse(ReportConfig, args.config)
        figures(args.summary, args.safety_vs_distinct2, args.oracle_vs_model_safety, config.dpi)
        log.info("wrote %s, %s", args.safety_vs_distinct2, args.oracle_vs_model_safety)


if __name__ == "__main__":
    run(main)
