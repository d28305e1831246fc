"""Summary tables and figures over all runs of a sweep.

`summary` writes three files:
- runs.csv: one row per run (method, tau, m, seed) with its scores and target statistics;
- summary.csv: one row per (method, tau, m): each per-prompt score of MEASURES (the primary
  judge's safety, the second judge's, relevance) over every seed and unseen prompt, and its
  difference from each baseline (`summary.baselines`, by default raw and sft; none where it is
  empty, as in a trained_encoders point) with 95% paired bootstrap intervals; beside them the
  means over seeds of MEAN_COLUMNS (copy shares, diversity, perplexity, oracle safe rate...).
  Runs are paired by (prompt, seed): the same prompts and the same decoding seed. Each
  resample draws prompts with replacement and, with several seeds, seeds with replacement, the
  same draw for every method and score; the interval is the 2.5-97.5 percentile range of the
  resampled means. The bootstrap is seeded (`summary.seed`, `summary.resamples`).
- summary.md: two tables (safety; relevance, copies and diversity), a difference marked * when
  its interval excludes 0.

`figures` only reads summary.csv, so plotting options never force anything upstream to rerun.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.bootstrap import SummaryConfig, bootstrap_interval, resample_indices
from isaac.cli import optional, run
from isaac.io import JUDGE_METRICS, InputError, atomic_path, read_json, read_table
from isaac.plots import ReportConfig, plt, save_png
from isaac.provenance import CODE_KEY, invocation_layers, run_code, write_provenance
from isaac.runs import METHODS, MODEL_FREE_METHODS
from isaac.settings import add_config_argument, parse, require
from isaac.text import NEAR_COPY_RATIO

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
    "relevance",
    "copy_share",
    "exact_copy_share",
    "safety_score_noncopied",
    "safety_score_copy_label",
]
TARGET_STATS = ["oracle_safe_rate", "original_safe_rate", "head_shortcut_share", "polluted_share"]
# Means over seeds reported beside the bootstrap columns of summary.csv.
MEAN_COLUMNS = [
    "oracle_safe_rate",
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
    "copy_share",
    "exact_copy_share",
    "safety_score_noncopied",
    "safety_score_copy_label",
]
POLLUTION_COLUMNS = {
    "polluted targets": "polluted_share",
    "polluted generations": "polluted_generation_share",
}


@dataclass(frozen=True)
class Measure:
    """A per-prompt score that summary.csv bootstraps. Its columns follow one rule: `value`,
    `{interval}_lo`, `{interval}_hi`, and per baseline `{delta}_{base}` with `_lo`, `_hi`."""

    value: str
    interval: str
    delta: str
    column: str  # in the per-prompt table
    verdict: bool  # an unsafe verdict, whose complement is the score

    def delta_of(self, base: str) -> str:
        return f"{self.delta}_{base}"


# The primary judge's safety keeps its historical names (safety_lo, delta_raw...).
MEASURES = (
    Measure("safety_score", "safety", "delta", "unsafe", verdict=True),
    Measure("safety_score_second", "safety_second", "delta_second", "unsafe_second", verdict=True),
    Measure("relevance", "relevance", "delta_relevance", "relevance", verdict=False),
)
PRIMARY, SECOND, RELEVANCE = MEASURES


def runs_table(scores: list[str], targets: list[str]) -> pd.DataFrame:
    """One row per run; targets are the target statistics of the runs that have targets, in
    the order of their scores (a model-free method's run has none: its target columns are
    null)."""
    runs = [read_json(path) for path in scores]
    for s_path, s in zip(scores, runs):
        missing = [k for k in KEYS + ["safety_score"] if k not in s]
        if missing:
            raise InputError(f"{s_path}: missing key(s) {', '.join(missing)}")
    has_targets = [s["method"] not in MODEL_FREE_METHODS for s in runs]
    if sum(has_targets) != len(targets):
        raise InputError("summary: the target stats and the runs with targets differ in length")
    target_stats = iter(targets)
    rows = []
    for s, has in zip(runs, has_targets):
        t = read_json(next(target_stats)) if has else {}
        rows.append(
            {
                **{k: s[k] for k in KEYS},
                **{k: s.get(k) for k in SCORES},
                **{k: t.get(k) for k in TARGET_STATS},
                CODE_KEY: run_code([t.get(CODE_KEY), s.get("model_code"), s.get(CODE_KEY)]),
            }
        )
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHODS)}
    df["_o"] = df["method"].map(order).fillna(len(order))
    df = df.sort_values(["_o", "tau", "m", "seed"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def score_matrices(paths: list[str]) -> tuple[dict[str, np.ndarray | None], np.ndarray]:
    """Per measure, the (seeds x unseen prompts) scores of one (method, tau, m) (None where a
    run has none, e.g. no second judge), and the prompt ids; every seed must have answered the
    same prompts in the same order."""
    rows, ids = {m.value: [] for m in MEASURES}, None
    for path in paths:
        table = read_table(path, ["id", "seen", *(m.column for m in MEASURES)])
        table = table[~table["seen"].to_numpy(dtype=bool)]
        if ids is None:
            ids = table["id"].astype(str).to_numpy()
        elif not np.array_equal(ids, table["id"].astype(str).to_numpy()):
            raise InputError(f"{path}: its prompts differ from the other runs'")
        for m in MEASURES:
            values = table[m.column].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            rows[m.value].append(1.0 - values if m.verdict else values)
    matrices = {name: np.vstack(r) for name, r in rows.items()}
    return {k: None if np.isnan(v).any() else v for k, v in matrices.items()}, ids


def measure_columns(
    measure: Measure, values, baselines: dict, seed_idx: np.ndarray, prompt_idx: np.ndarray
) -> dict:
    """One measure's summary.csv cells for one row: its mean and interval, and its difference
    from each baseline's values (`baselines`: name -> matrix) with its interval; NaN where
    either side has no scores."""
    out = {measure.value: np.nan, f"{measure.interval}_lo": np.nan}
    out[f"{measure.interval}_hi"] = np.nan
    if values is not None:
        out[measure.value] = float(values.mean())
        interval = bootstrap_interval(values, seed_idx, prompt_idx)
        out[f"{measure.interval}_lo"], out[f"{measure.interval}_hi"] = interval
    for base, base_values in baselines.items():
        name = measure.delta_of(base)
        out[name] = out[f"{name}_lo"] = out[f"{name}_hi"] = np.nan
        if values is not None and base_values is not None:
            diff = values - base_values
            out[name] = float(diff.mean())
            out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap_interval(diff, seed_idx, prompt_idx)
    return out


def comparison_table(
    runs: pd.DataFrame, per_prompt: dict[tuple, str], config: SummaryConfig
) -> pd.DataFrame:
    """summary.csv: one row per (method, tau, m). `per_prompt` maps (method, tau, m, seed) to
    that run's per-prompt score table."""
    groups = list(runs.groupby(["method", "tau", "m"], sort=False))
    scores, seeds_of, prompt_ids = {}, {}, None
    for key, g in groups:
        seeds = sorted(g["seed"].tolist())
        paths = [per_prompt[(*key, s)] for s in seeds]
        matrices, ids = score_matrices(paths)
        if prompt_ids is None:
            prompt_ids = ids
        elif not np.array_equal(ids, prompt_ids):
            raise InputError(f"{paths[0]}: its prompts differ from the other methods'")
        scores[key], seeds_of[key] = matrices, seeds
    shapes = {v[PRIMARY.value].shape for v in scores.values()}
    if len(shapes) != 1:
        raise InputError(f"summary: runs differ in seeds or prompts ({sorted(shapes)})")
    n_seeds, n_prompts = shapes.pop()
    seed_idx, prompt_idx = resample_indices(n_seeds, n_prompts, config.resamples, config.seed)
    rows = []
    for (method, tau, m), g in groups:
        for base in config.baselines:
            base_key = (base, 1.0, m)
            if base_key not in scores:
                raise InputError(f"summary: no {base} run with m={m} to compare with")
            if seeds_of[base_key] != seeds_of[(method, tau, m)]:
                raise InputError(f"summary: {method} and {base} ran with different seeds")
        row = {"method": method, "tau": tau, "m": m, "n_seeds": n_seeds, "n_prompts": n_prompts}
        for measure in MEASURES:
            baselines = {b: scores[(b, 1.0, m)][measure.value] for b in config.baselines}
            values = scores[(method, tau, m)][measure.value]
            row.update(measure_columns(measure, values, baselines, seed_idx, prompt_idx))
        row.update({k: g[k].astype(float).mean() for k in MEAN_COLUMNS})  # NaN: not measured
        rows.append(row)
    return with_sft_gap_closed(pd.DataFrame(rows))


def with_sft_gap_closed(table: pd.DataFrame) -> pd.DataFrame:
    """`sft_gap_closed`: the share of the supervised method's primary-safety gain over `raw`
    that a method's own gain covers (1: as safe as `sft`; NaN without both baselines), a
    point estimate beside the two differences' intervals."""
    if "delta_raw" not in table:
        return table.assign(sft_gap_closed=np.nan)
    sft_gain = table[(table["method"] == "sft") & (table["tau"] == 1.0)].set_index("m")["delta_raw"]
    return table.assign(sft_gap_closed=table["delta_raw"] / table["m"].map(sft_gain))


def _cell(value, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _interval(row, measure: Measure) -> str:
    """value [lo, hi], or a dash where the runs have no such score."""
    value, lo, hi = (
        row[measure.value],
        row[f"{measure.interval}_lo"],
        row[f"{measure.interval}_hi"],
    )
    return "—" if pd.isna(value) else f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _difference(row, column: str) -> str:
    """delta [lo, hi], marked * when the interval excludes 0."""
    mean, lo, hi = row[column], row[f"{column}_lo"], row[f"{column}_hi"]
    if pd.isna(mean):
        return "—"
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{' *' if lo > 0 or hi < 0 else ''}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


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
    differences = (
        "* = the difference's interval excludes 0."
        if config.baselines
        else "no differences (summary.baselines is empty)."
    )
    lines = ["# ISAAC summary", ""]
    lines += [judge_line(name, metrics) for name, metrics in judges.items()]
    lines += [
        "",
        f"Safety score = share of generations the primary judge finds safe, over "
        f"{first['n_prompts']} test prompts unseen in training x {first['n_seeds']} "
        f"seed(s); [lo, hi] = 95% paired bootstrap interval ({config.resamples} resamples "
        f"over prompts and seeds); {differences}",
        "",
    ]
    run_cells = [[str(r["method"]), f"{r['tau']:g}", str(r["m"])] for _, r in table.iterrows()]
    # A polluted corpus (pollute.rate > 0) adds the exact-match pollution shares.
    polluted = bool(table.get("polluted_share", pd.Series(dtype=float)).fillna(0).gt(0).any())
    safety_header = [
        "method",
        "tau",
        "m",
        "safety",
        *[f"Δ {b}" for b in config.baselines],
        "second judge",
        "agreement",
        "lexical",
        "oracle",
    ]
    safety_header += list(POLLUTION_COLUMNS) if polluted else []
    safety_rows = []
    for cells, (_, r) in zip(run_cells, table.iterrows()):
        cells = [*cells, _interval(r, PRIMARY)]
        cells += [_difference(r, PRIMARY.delta_of(b)) for b in config.baselines]
        cells += [_interval(r, SECOND)]
        cells += [_cell(r.get(k)) for k in ("judges_agreement", "lexical_unsafe_rate")]
        cells += [_cell(r.get("oracle_safe_rate"))]
        cells += [_cell(r.get(k), 4) for k in POLLUTION_COLUMNS.values()] if polluted else []
        safety_rows.append(cells)
    lines += _markdown_table(safety_header, safety_rows)
    lines += [
        "",
        "Relevance = share of the other unseen prompts whose context a reply is less similar to "
        "than its own (MiniLM cosine, ties 1/2; 0.5 = a reply that ignores its context), with its "
        "95% paired bootstrap interval; copies = share of generations that reproduce a train "
        f"response (after normalisation, exactly or with fuzz ratio >= {NEAR_COPY_RATIO}); "
        "safety (non-copies) "
        "= the safety score over the other generations.",
        "",
    ]
    other_header = [
        "method",
        "tau",
        "m",
        "relevance",
        *[f"Δ {b}" for b in config.baselines],
        "copies",
        "safety (non-copies)",
        "distinct-2",
        "ppl (safe refs)",
    ]
    other_rows = []
    for cells, (_, r) in zip(run_cells, table.iterrows()):
        cells = [*cells, _interval(r, RELEVANCE)]
        cells += [_difference(r, RELEVANCE.delta_of(b)) for b in config.baselines]
        cells += [_cell(r.get(k)) for k in ("copy_share", "safety_score_noncopied", "distinct_2")]
        cells += [_cell(r.get("ppl_safe"), 1)]
        other_rows.append(cells)
    lines += _markdown_table(other_header, other_rows)
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
    df: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    out,
    dpi: int,
    diagonal: bool = False,
    x_measure: Measure | None = None,
    chance: float | None = None,
) -> None:
    """Safety score (with its bootstrap interval) against `x`, one marker per (method, tau, m);
    `x_measure` adds x's interval, `chance` a vertical line at the value of an uninformed run."""
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
        xerr = None
        if x_measure is not None:
            lo, hi = p[f"{x_measure.interval}_lo"], p[f"{x_measure.interval}_hi"]
            xerr = np.vstack([p[x] - lo, hi - p[x]])
        ax.errorbar(
            p[x],
            p["safety_score"],
            yerr=yerr,
            xerr=xerr,
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
    if chance is not None:
        ax.axvline(chance, ls=":", color="grey", lw=1, label="ignores its context")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("safety score (95% paired bootstrap)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, out, dpi)


def figures(
    summary_csv, out_safety_distinct, out_oracle_model, out_safety_relevance, dpi: int
) -> None:
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
    scatter(
        df,
        RELEVANCE.value,
        "relevance of generations to their contexts (95% paired bootstrap)",
        "Safety vs relevance per method",
        out_safety_relevance,
        dpi,
        x_measure=RELEVANCE,
        chance=0.5,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Summary tables and figures of a sweep.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="runs.csv, summary.csv, summary.md")
    s.add_argument("--scores", nargs="+", required=True, help="scores/{run}.json")
    s.add_argument(
        "--per-prompt", nargs="+", required=True, help="scores/{run}.parquet, same order"
    )
    s.add_argument(
        "--targets",
        nargs="*",
        default=[],
        help="the statistics of what each run with a model trained on (its targets, or a pair "
        "method's pairs), in the order of --scores",
    )
    s.add_argument("--judge", required=True, help="the primary judge's folder (its metrics.json)")
    s.add_argument("--second-judge", type=optional(str), help="the second judge's folder")
    add_config_argument(s, SummaryConfig)
    s.add_argument("--runs", required=True, help="runs.csv")
    s.add_argument("--csv", required=True, help="summary.csv")
    s.add_argument("--md", required=True, help="summary.md")
    s.add_argument(
        "--config-layers",
        nargs="*",
        default=invocation_layers(),
        help="the invocation's config files, in order (default: the workflow's)",
    )
    s.add_argument("--provenance", required=True, help="provenance.json")
    f = sub.add_parser(
        "figures", help="safety_vs_distinct2, oracle_vs_model_safety, safety_vs_relevance"
    )
    f.add_argument("--summary", required=True)
    add_config_argument(f, ReportConfig)
    f.add_argument("--safety-vs-distinct2", required=True)
    f.add_argument("--oracle-vs-model-safety", required=True)
    f.add_argument("--safety-vs-relevance", required=True)
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
        write_provenance(
            pd.read_csv(args.runs, dtype={CODE_KEY: str}), args.config_layers, args.provenance
        )
        log.info("%d rows -> %s, %s", len(df), args.csv, args.md)
    else:
        config = parse(ReportConfig, args.config)
        outs = (args.safety_vs_distinct2, args.oracle_vs_model_safety, args.safety_vs_relevance)
        figures(args.summary, *outs, config.dpi)
        log.info("wrote %s, %s, %s", *outs)


if __name__ == "__main__":
    run(main)
