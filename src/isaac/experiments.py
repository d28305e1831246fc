"""The paper's experiments: their points, and the tables that compare the points.

An experiment varies a few config keys (its axis) of the whole workflow. Each point is the
current config with those keys and `corpus.name` overridden, so it runs as a corpus of its own,
results/{name}/ (rules/experiments.smk imports the workflow once per point as a Snakemake
module). One rule per experiment reads the points' results and writes its table here, as CSV
(every column) and Markdown (formatted cells):

    python -m isaac.experiments pollution --runs results/demo-polluted-0.01/runs.csv ... \
        --config '{"rates": [0.01]}' --csv pollution.csv --md pollution.md
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.bootstrap import SummaryConfig, resample_indices
from isaac.cli import run
from isaac.io import InputError, atomic_path, read_json
from isaac.plots import ReportConfig, plt, save_png
from isaac.report import KEYS, MEASURES, measure_columns, score_matrices
from isaac.runs import GROUP_METHODS, RUN, fmt_tau
from isaac.settings import add_config_argument, from_dict, parse, require

log = logging.getLogger("isaac.experiments")


@dataclass(frozen=True)
class Point:
    """One point of an experiment: its corpus name and the config keys it overrides."""

    name: str
    overrides: dict

    @property
    def module(self) -> str:
        """The point's Snakemake module name (its rules are named {module}_{rule})."""
        return re.sub(r"\W", "_", self.name)


def merged(base: dict, layer: dict) -> dict:
    """`base` with `layer` laid over it, nested sections merged key by key (base unchanged)."""
    out = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def point_config(config: dict, point: Point) -> dict:
    """The config a point runs under: the current one, its axis keys and corpus name replaced."""
    return merged(
        config,
        {**point.overrides, "corpus": {**point.overrides.get("corpus", {}), "name": point.name}},
    )


def rate_label(rate: float) -> str:
    """A pollution rate in a folder name: two decimals (0.10), more only where it needs them."""
    text = f"{rate:.2f}"
    return text if float(text) == rate else repr(rate)


@dataclass(frozen=True)
class EncoderSetting:
    """One grouping of the encoder study: DBSCAN on an encoder at an eps quantile, or a fixed
    assessor (eps_quantile None) on that encoder's neighbour pools."""

    encoder: str
    assessor: str
    eps_quantile: float | None

    @property
    def label(self) -> str:
        if self.eps_quantile is None:
            return f"{self.assessor}-{self.encoder}"
        return f"{self.assessor}-{self.encoder}-q{self.eps_quantile:g}"

    @property
    def overrides(self) -> dict:
        assess = {"assessor": self.assessor}
        if self.eps_quantile is not None:
            assess |= {"eps": None, "eps_quantile": self.eps_quantile}
        return {"embed": {"encoder": self.encoder}, "assess": assess}


@dataclass(frozen=True)
class EncodersConfig:
    """The encoder study, experiments.encoders."""

    encoders: tuple[str, ...]
    eps_quantiles: tuple[float, ...]
    main_quantile: float
    assessors: tuple[str, ...]
    assessor_encoder: str
    methods: tuple[str, ...]


def encoder_settings(study: EncodersConfig) -> list[EncoderSetting]:
    """DBSCAN for every encoder and eps quantile, then each fixed assessor."""
    settings = [EncoderSetting(e, "dbscan", q) for e in study.encoders for q in study.eps_quantiles]
    return settings + [EncoderSetting(study.assessor_encoder, a, None) for a in study.assessors]


def encoders_study(config: dict) -> EncodersConfig:
    """experiments.encoders of a workflow config."""
    return from_dict(EncodersConfig, config["experiments"]["encoders"], "experiments.encoders")


def experiment_points(config: dict) -> dict[str, list[Point]]:
    """Every experiment's points under `config`, named after its corpus (none where the axis
    is empty, as by default)."""
    corpus, experiments = config["corpus"]["name"], config["experiments"]
    return {
        "pollution": [
            Point(f"{corpus}-polluted-{rate_label(r)}", {"corpus": {"pollute": {"rate": r}}})
            for r in experiments["pollution"]["rates"]
        ],
        "tempering": [
            Point(f"{corpus}-rounds-{r}", {"train": {"rounds": r}})
            for r in experiments["tempering"]["rounds"]
        ],
        "head_safety": [
            Point(f"{corpus}-{Path(path).stem}", {"corpus": {"path": path}})
            for path in experiments["head_safety"]["generations"]
        ],
        "encoders": [
            Point(f"{corpus}-{s.label}", s.overrides)
            for s in encoder_settings(encoders_study(config))
        ],
        "trained_encoders": [
            Point(f"{corpus}-encoder-{encoder}", trained_encoder_overrides(config, encoder))
            for encoder in experiments["trained_encoders"]["encoders"]
        ],
    }


def trained_encoder_overrides(config: dict, encoder: str) -> dict:
    """A trained-encoder point: the encoder replaced, only the study's methods trained (its
    `raw` would repeat this corpus's, whose targets are the original responses whatever the
    encoder, so the table pairs the methods with this corpus's `raw` instead), judged by this
    corpus's judges (copied, not refitted: they do not depend on the encoder)."""
    return {
        "embed": {"encoder": encoder},
        "sweep": {"methods": list(config["experiments"]["trained_encoders"]["methods"])},
        "summary": {"baselines": []},
        "judge": {"from": str(Path("results", config["corpus"]["name"], "judge"))},
    }


def encoder_run(method: str, config: dict) -> str:
    """The run id whose targets the encoder study reads: the sweep's first tau, m and seed."""
    sweep = config["sweep"]
    return RUN.format(
        method=method, tau=fmt_tau(sweep["taus"][0]), m=sweep["ms"][0], seed=sweep["seeds"][0]
    )


# Markdown columns: header -> cell format filled from a row of the CSV table.
POLLUTION_COLUMNS = {
    "rate": "{rate:g}",
    "method": "{method}",
    "tau": "{tau:g}",
    "polluted targets": "{polluted_share:.4f}",
    "polluted generations": "{polluted_generation_share:.4f}",
    "safety": "{safety_score:.3f}",
    "oracle": "{oracle_safe_rate:.3f}",
    "distinct-2": "{distinct_2:.3f}",
}
TEMPERING_COLUMNS = {
    "rounds": "{rounds}",
    "method": "{method}",
    "safety [95% CI]": "{safety_score:.3f} [{safety_lo:.3f}, {safety_hi:.3f}]",
    "Δ raw [95% CI]": "{delta_raw:+.3f} [{delta_raw_lo:+.3f}, {delta_raw_hi:+.3f}]",
    "distinct-2": "{distinct_2:.3f}",
    "ppl (safe refs)": "{ppl_safe:.1f}",
}
HEAD_SAFETY_COLUMNS = {
    "generations": "{generations}",
    "prompts compared": "{n_compared}",
    "responses per prompt": "{mean_responses:.1f}",
    "head size": "{mean_head_size:.1f}",
    "eps": "{eps:.3f}",
    "head unsafe": "{head_unsafe:.3f}",
    "rest unsafe": "{rest_unsafe:.3f}",
    "rest - head [95% CI]": "{difference:+.3f} [{difference_lo:+.3f}, {difference_hi:+.3f}]",
    "head safer": "{share_head_safer:.2f}",
}


def markdown(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A Markdown table: one column per key of `columns`, cells formatted from each row; a
    cell whose values are missing (a method without that measure) is a dash."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell(row, template) for template in columns.values()) + " |")
    return "\n".join(lines) + "\n"


def cell(row: pd.Series, template: str) -> str:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(pd.isna(row[name]) for name in fields):
        return "—"
    return template.format(**row)


def pollution_table(runs: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """One row per rate and run (each point's runs.csv): the polluted shares of targets and
    generations beside safety, oracle safe rate and distinct-2."""
    table = pd.concat([df.assign(rate=rate) for rate, df in runs.items()], ignore_index=True)
    return table[
        [
            "rate",
            "method",
            "tau",
            "seed",
            "polluted_share",
            "polluted_generation_share",
            "safety_score",
            "oracle_safe_rate",
            "distinct_2",
        ]
    ]


def tempering_table(summaries: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per round count and method (each point's summary.csv)."""
    table = pd.concat([df.assign(rounds=r) for r, df in summaries.items()], ignore_index=True)
    return table[
        [
            "rounds",
            "method",
            "safety_score",
            "safety_lo",
            "safety_hi",
            "delta_raw",
            "delta_raw_lo",
            "delta_raw_hi",
            "distinct_2",
            "ppl_safe",
        ]
    ]


def head_safety_table(points: dict[str, tuple[str, dict, dict]]) -> pd.DataFrame:
    """One row per generation file, {corpus: (file stem, head_safety.json, the groups'
    statistics)}, with the DBSCAN radius the groups used (NaN for the other assessors)."""
    return pd.DataFrame(
        [
            {
                "corpus": corpus,
                "generations": generations,
                **head,
                "eps": float("nan") if groups.get("eps") is None else groups["eps"],
            }
            for corpus, (generations, head, groups) in points.items()
        ]
    )


def encoders_table(stats: list[tuple[EncoderSetting, dict, dict[str, dict]]]) -> pd.DataFrame:
    """One row per setting and method: the groups' eps and size, the targets' oracle safe rate
    (overall and per category of the query example), distinct share and head shortcut share."""
    rows = []
    for setting, groups, targets in stats:
        for method, target in targets.items():
            by_category = target.get("oracle_safe_rate_by_category") or {}
            rows.append(
                {
                    "encoder": setting.encoder,
                    "assessor": setting.assessor,
                    "eps_quantile": setting.eps_quantile,
                    "eps": groups.get("eps"),
                    "mean_groups": groups["mean_groups"],
                    "method": method,
                    "oracle_safe_rate": target["oracle_safe_rate"],
                    "distinct_target_share": target["distinct_target_share"],
                    "head_shortcut_share": target["head_shortcut_share"],
                    **{f"oracle_{c}": v for c, v in by_category.items()},
                }
            )
    return pd.DataFrame(rows)


def encoders_markdown(df: pd.DataFrame, main_quantile: float) -> str:
    """The settings at `main_quantile` per method and category, then, per group method, its
    targets against the eps quantile for each encoder (the rule's sensitivity)."""
    pages = [encoders_main_markdown(df, main_quantile)]
    for method in [m for m in df["method"].unique() if m in GROUP_METHODS]:
        pages.append(
            f"`{method}` targets against the eps quantile q (DBSCAN): oracle safe rate and"
            f" distinct share per encoder.\n\n" + quantile_markdown(df, method)
        )
    return "\n".join(pages)


def quantile_markdown(df: pd.DataFrame, method: str) -> str:
    """One row per eps quantile, the oracle safe rate and distinct share of `method`'s targets
    under each encoder's DBSCAN groups."""
    rows = df[(df["assessor"] == "dbscan") & (df["method"] == method)]
    encoders = list(rows["encoder"].unique())
    header = ["q", *[f"{e} {what}" for e in encoders for what in ("oracle safe", "distinct share")]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for q, at_q in rows.groupby("eps_quantile", sort=True):
        by_encoder = at_q.set_index("encoder")
        cells = [f"{q:.2f}"] + [
            f"{by_encoder.at[encoder, column]:.3f}"
            for encoder in encoders
            for column in ("oracle_safe_rate", "distinct_target_share")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def encoders_main_markdown(df: pd.DataFrame, main_quantile: float) -> str:
    """The rows of the fixed assessors and of DBSCAN at `main_quantile`, per category."""
    main = df[df["eps_quantile"].isna() | (df["eps_quantile"] == main_quantile)]
    categories = [c for c in df.columns if c.startswith("oracle_") and c != "oracle_safe_rate"]
    header = [
        "encoder",
        "assessor",
        "eps",
        "groups/pool",
        "method",
        "oracle safe",
        "distinct share",
        *[c.removeprefix("oracle_") for c in categories],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in main.iterrows():
        eps = "—" if pd.isna(row["eps"]) else f"{row['eps']:.3f}"
        cells = [
            row["encoder"] if row["assessor"] == "dbscan" else f"({row['encoder']} pools)",
            row["assessor"],
            eps,
            f"{row['mean_groups']:.1f}",
            row["method"],
            f"{row['oracle_safe_rate']:.3f}",
            f"{row['distinct_target_share']:.3f}",
        ]
        cells += [f"{row[c]:.3f}" if pd.notna(row[c]) else "—" for c in categories]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def eps_sensitivity_figure(df: pd.DataFrame, out, dpi: int) -> None:
    """Oracle safe rate and distinct-target share of isaac and max against the eps quantile,
    per encoder, with the original responses' safe rate as a reference line."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for encoder, g in df[df["assessor"] == "dbscan"].groupby("encoder"):
        for method, style in (("isaac", "-o"), ("max", "--s")):
            m = g[g["method"] == method].sort_values("eps_quantile")
            label = f"{encoder} {method}"
            axes[0].plot(m["eps_quantile"], m["oracle_safe_rate"], style, label=label)
            axes[1].plot(m["eps_quantile"], m["distinct_target_share"], style, label=label)
    raw = df.loc[df["method"] == "raw", "oracle_safe_rate"]
    if len(raw):
        axes[0].axhline(raw.iloc[0], color="grey", lw=1, ls=":", label="raw responses")
    axes[0].set(xlabel="eps quantile q (label-free rule)", ylabel="oracle safe rate of targets")
    axes[1].set(xlabel="eps quantile q (label-free rule)", ylabel="distinct target share")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out, dpi)


TRAINED_ENCODERS_COLUMNS = {
    "encoder": "{encoder}",
    "eps": "{eps:.3f}",
    "method": "{method}",
    "safety [95% CI]": "{safety_score:.3f} [{safety_lo:.3f}, {safety_hi:.3f}]",
    "Δ raw [95% CI]": "{delta_raw:+.3f} [{delta_raw_lo:+.3f}, {delta_raw_hi:+.3f}]",
    "second judge [95% CI]": (
        "{safety_score_second:.3f} [{safety_second_lo:.3f}, {safety_second_hi:.3f}]"
    ),
    "relevance [95% CI]": "{relevance:.3f} [{relevance_lo:.3f}, {relevance_hi:.3f}]",
    "Δ raw relevance [95% CI]": (
        "{delta_relevance_raw:+.3f} [{delta_relevance_raw_lo:+.3f}, {delta_relevance_raw_hi:+.3f}]"
    ),
    "copies": "{copy_share:.3f}",
    "distinct-2": "{distinct_2:.3f}",
    "oracle": "{oracle_safe_rate:.3f}",
}


def run_tables(scores: Sequence[str], per_prompt: Sequence[str]) -> dict[tuple, str]:
    """(method, tau, m, seed) -> the run's per-prompt table, the keys read from the run's
    scores JSON (`per_prompt` in the order of `scores`)."""
    if len(per_prompt) != len(scores):
        raise InputError(f"{len(scores)} scores files for {len(per_prompt)} per-prompt tables")
    runs = {}
    for score, table in zip(scores, per_prompt):
        run = read_json(score)
        missing = [key for key in KEYS if key not in run]
        if missing:
            raise InputError(f"{score}: missing key(s) {', '.join(missing)}")
        key = tuple(run[k] for k in KEYS)
        if key in runs:
            raise InputError(f"{score}: a second scores file of the run {key}")
        runs[key] = table
    return runs


def raw_differences(
    runs: dict[tuple, str], raw: dict[tuple, str], config: SummaryConfig
) -> pd.DataFrame:
    """Per (method, tau, m) of one point's `runs`, each measure's difference from this
    corpus's `raw` runs of the same m ((method, tau, m, seed) -> per-prompt table, both), with
    the summary's paired bootstrap (isaac.report): the same seeds and unseen prompts, the same
    draws, so the cells are those of a summary holding both folders' runs."""
    raw_of = {}
    for (method, _, m, seed), path in raw.items():
        if method != "raw":
            raise InputError(f"{path}: a {method} run where this corpus's raw runs belong")
        raw_of.setdefault(m, {})[seed] = path
    by_row = {}
    for (method, tau, m, seed), path in runs.items():
        by_row.setdefault((method, tau, m), {})[seed] = path
    rows = []
    for (method, tau, m), tables in by_row.items():
        base = raw_of.get(m, {})
        if sorted(base) != sorted(tables):
            raise InputError(
                f"{method} tau {tau:g} m {m} ran with seeds {sorted(tables)}"
                f" ({', '.join(tables.values())}), this corpus's raw with seeds {sorted(base)}"
                f" ({', '.join(base.values()) or 'no files'})"
            )
        seeds = sorted(tables)
        paths, raw_paths = [tables[s] for s in seeds], [base[s] for s in seeds]
        values, ids = score_matrices(paths)
        raw_values, raw_ids = score_matrices(raw_paths)
        if not np.array_equal(ids, raw_ids):
            raise InputError(f"{paths[0]} and {raw_paths[0]}: their unseen prompts differ")
        seed_idx, prompt_idx = resample_indices(len(seeds), len(ids), config.resamples, config.seed)
        row = {"method": method, "tau": tau, "m": m}
        for measure in MEASURES:
            cells = measure_columns(
                measure,
                values[measure.value],
                {"raw": raw_values[measure.value]},
                seed_idx,
                prompt_idx,
            )
            delta = measure.delta_of("raw")
            row.update({c: cells[c] for c in (delta, f"{delta}_lo", f"{delta}_hi")})
        rows.append(row)
    return pd.DataFrame(rows)


def trained_encoders_table(
    folders: Sequence[tuple[dict, pd.DataFrame]],
    methods: Sequence[str],
    differences: Sequence[pd.DataFrame],
) -> pd.DataFrame:
    """(groups' statistics, summary) of this corpus, then of each point: every method of the
    first (its own encoder, its differences from its own summary), `methods` of the others,
    with their differences from this corpus's `raw` (`differences`, one raw_differences table
    per point); `encoder` and `eps` come from each folder's groups."""
    if len(differences) != len(folders) - 1:
        raise InputError(f"{len(differences)} difference tables for {len(folders) - 1} points")
    rows = []
    for i, (groups, summary) in enumerate(folders):
        if i:
            missing = sorted(set(methods) - set(summary["method"]))
            if missing:
                raise InputError(
                    f"the {groups['encoder']} point's summary has no rows for {missing}"
                )
            summary = with_differences(
                summary[summary["method"].isin(methods)], differences[i - 1], groups["encoder"]
            )
        eps = float("nan") if groups.get("eps") is None else groups["eps"]
        rows.append(summary.assign(encoder=groups["encoder"], eps=eps))
    table = pd.concat(rows, ignore_index=True)
    return table[["encoder", "eps", *[c for c in table.columns if c not in ("encoder", "eps")]]]


def with_differences(summary: pd.DataFrame, differences: pd.DataFrame, encoder: str):
    """A point's summary rows with their (method, tau, m)'s columns of `differences`."""
    keys = ["method", "tau", "m"]
    rows, found = summary.set_index(keys), differences.set_index(keys)
    missing = rows.index.difference(found.index)
    if len(missing):
        raise InputError(
            f"the {encoder} point's scores have no runs for {', '.join(map(str, missing))}"
        )
    rows[list(found.columns)] = found.reindex(rows.index)
    return rows.reset_index()


def write_table(df: pd.DataFrame, md: str, csv_path, md_path) -> None:
    """The table as CSV (every column, 6 significant digits) and its Markdown text."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(md)


@dataclass(frozen=True)
class PollutionConfig:
    rates: tuple[float, ...]


@dataclass(frozen=True)
class TemperingConfig:
    rounds: tuple[int, ...]


@dataclass(frozen=True)
class HeadVsRestConfig:
    generations: tuple[str, ...]


@dataclass(frozen=True)
class TrainedEncodersConfig:
    encoders: tuple[str, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class ExperimentsConfig:
    """The experiments section; a table's job receives the other experiments as null."""

    pollution: PollutionConfig | None
    tempering: TemperingConfig | None
    head_safety: HeadVsRestConfig | None
    encoders: EncodersConfig | None
    trained_encoders: TrainedEncodersConfig | None


def same_length(what: str, files: Sequence[str], values: Sequence) -> None:
    if len(files) != len(values):
        raise InputError(f"{what}: {len(files)} files for {len(values)} points")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="An experiment's table over its points.")
    sub = p.add_subparsers(dest="experiment", required=True)
    pollution = sub.add_parser("pollution", help="polluted shares over pollute.rate")
    pollution.add_argument("--runs", nargs="+", required=True, help="runs.csv, one per rate")
    tempering = sub.add_parser("tempering", help="the summary over train.rounds")
    tempering.add_argument("--summaries", nargs="+", required=True, help="summary.csv per S")
    head = sub.add_parser("head_safety", help="head against rest over generation files")
    head.add_argument("--results", nargs="+", required=True, help="head_safety.json per file")
    head.add_argument("--groups", nargs="+", required=True, help="groups statistics per file")
    encoders = sub.add_parser("encoders", help="targets over encoders, eps quantiles, assessors")
    encoders.add_argument("--groups", nargs="+", required=True, help="groups stats per setting")
    encoders.add_argument(
        "--targets",
        nargs="+",
        required=True,
        help="targets stats per setting and method (methods vary fastest)",
    )
    encoders.add_argument(
        "--report", required=True, help="the report section as a JSON object (the figure's dpi)"
    )
    encoders.add_argument("--figure", required=True, help="eps_sensitivity.png")
    trained = sub.add_parser("trained_encoders", help="trained methods over encoders")
    trained.add_argument(
        "--summaries", nargs="+", required=True, help="summary.csv of this corpus, then per point"
    )
    trained.add_argument(
        "--groups", nargs="+", required=True, help="groups statistics, in the same order"
    )
    trained.add_argument(
        "--raw-scores", nargs="+", required=True, help="scores/{run}.json of this corpus's raw"
    )
    trained.add_argument(
        "--raw-per-prompt", nargs="+", required=True, help="scores/{run}.parquet, same order"
    )
    trained.add_argument(
        "--scores",
        nargs="+",
        required=True,
        help="scores/{run}.json of each point's runs, point by point, as many per point",
    )
    trained.add_argument(
        "--per-prompt", nargs="+", required=True, help="scores/{run}.parquet, same order"
    )
    trained.add_argument(
        "--summary-config",
        required=True,
        help="the summary section as a JSON object (the bootstrap's resamples and seed)",
    )
    for parser in (pollution, tempering, head, encoders, trained):
        add_config_argument(parser, ExperimentsConfig)
        parser.add_argument("--csv", required=True)
        parser.add_argument("--md", required=True)
    args = p.parse_args(argv)
    config = parse(ExperimentsConfig, args.config)
    require(config, args.experiment)

    if args.experiment == "pollution":
        rates = config.pollution.rates
        same_length("--runs", args.runs, rates)
        df = pollution_table({r: pd.read_csv(f) for r, f in zip(rates, args.runs)})
        md = markdown(df, POLLUTION_COLUMNS)
    elif args.experiment == "tempering":
        rounds = config.tempering.rounds
        same_length("--summaries", args.summaries, rounds)
        df = tempering_table({r: pd.read_csv(f) for r, f in zip(rounds, args.summaries)})
        md = markdown(df, TEMPERING_COLUMNS)
    elif args.experiment == "head_safety":
        generations = config.head_safety.generations
        same_length("--results", args.results, generations)
        same_length("--groups", args.groups, generations)
        df = head_safety_table(
            {
                Path(result).parent.name: (Path(path).stem, read_json(result), read_json(groups))
                for path, result, groups in zip(generations, args.results, args.groups)
            }
        )
        md = markdown(df, HEAD_SAFETY_COLUMNS)
    elif args.experiment == "trained_encoders":
        study = config.trained_encoders
        folders = ["this corpus", *study.encoders]
        same_length("--summaries", args.summaries, folders)
        same_length("--groups", args.groups, folders)
        bootstrap = parse(SummaryConfig, args.summary_config, "--summary-config")
        raw = run_tables(args.raw_scores, args.raw_per_prompt)
        if len(args.per_prompt) != len(args.scores) or len(args.scores) % len(study.encoders):
            raise InputError(
                f"--scores, --per-prompt: {len(args.scores)} and {len(args.per_prompt)} files,"
                f" not the same runs for each of {len(study.encoders)} points"
            )
        size = len(args.scores) // len(study.encoders)
        df = trained_encoders_table(
            [(read_json(g), pd.read_csv(f)) for g, f in zip(args.groups, args.summaries)],
            study.methods,
            [
                raw_differences(
                    run_tables(args.scores[i : i + size], args.per_prompt[i : i + size]),
                    raw,
                    bootstrap,
                )
                for i in range(0, len(args.scores), size)
            ],
        )
        md = markdown(df, TRAINED_ENCODERS_COLUMNS)
    else:
        study = config.encoders
        settings, n = encoder_settings(study), len(study.methods)
        same_length("--groups", args.groups, settings)
        same_length("--targets", args.targets, [(s, m) for s in settings for m in study.methods])
        df = encoders_table(
            [
                (
                    s,
                    read_json(g),
                    {
                        m: read_json(t)
                        for m, t in zip(study.methods, args.targets[i * n : (i + 1) * n])
                    },
                )
                for i, (s, g) in enumerate(zip(settings, args.groups))
            ]
        )
        md = encoders_markdown(df, study.main_quantile)
        eps_sensitivity_figure(df, args.figure, parse(ReportConfig, args.report, "--report").dpi)
    write_table(df, md, args.csv, args.md)
    log.info("%s: %d rows -> %s, %s", args.experiment, len(df), args.csv, args.md)


if __name__ == "__main__":
    run(main)
