"""Encoders and assessors compared on one corpus, with eps set by the label-free quantile rule.

For each encoder (minilm, tfidf, model2vec) the DBSCAN radius is `assess.eps_quantile` q of the
nearest-distinct-member distances in the pools (the same rule for every encoder), for q in
QUANTILES; the fuzzy, exact and likelihood assessors run on MiniLM neighbour pools. Each setting
samples raw, random, isaac and max targets (tau 1, m 1, seed 0) with Snakemake and reads their
statistics. Labels are only reported (oracle safe rate, per category), never used to choose.

    .venv/bin/python bench/encoders.py --configfile config/diasafety.yaml --out docs/results/encoders-diasafety

Writes encoders.csv (one row per setting and method), encoders.md and eps_sensitivity.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from isaac.plots import plt, save_png  # noqa: E402
from isaac.runs import run_ids  # noqa: E402

ENCODERS = ("minilm", "tfidf", "model2vec")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
RULE_QUANTILE = 0.5  # the documented default of the rule, used for the main table
ASSESSORS = ("fuzzy", "exact", "likelihood")
METHODS = ("raw", "random", "isaac", "max")


def settings() -> list[dict]:
    """Every (label, config layer) to sample."""
    out = [
        {"encoder": e, "assessor": "dbscan", "q": q,
         "layer": {"embed": {"encoder": e}, "assess": {"assessor": "dbscan", "eps": None,
                                                       "eps_quantile": q}}}
        for e in ENCODERS for q in QUANTILES
    ]
    out += [
        {"encoder": "minilm", "assessor": a, "q": None,
         "layer": {"embed": {"encoder": "minilm"}, "assess": {"assessor": a}}}
        for a in ASSESSORS
    ]
    return out


def run_setting(configfile: str, layer: dict, corpus: str, assessor: str, cores: int) -> dict:
    """Sample the methods' targets for one config layer; their statistics and the groups'."""
    results = Path("results") / corpus  # relative to the repository, where Snakemake runs
    targets = [results / "targets" / f"{run}.json" for run in run_ids(METHODS, [1], [1], [0])]
    groups = results / "groups" / f"{assessor}.json"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(layer, f)
    cmd = [sys.executable, "-m", "snakemake", *map(str, targets), str(groups),
           "--cores", str(cores), "--configfile", configfile, f.name, "--quiet", "all"]
    subprocess.run(cmd, cwd=REPO, check=True)
    Path(f.name).unlink()
    return {"groups": json.loads((REPO / groups).read_text()),
            "targets": {m: json.loads((REPO / t).read_text()) for m, t in zip(METHODS, targets)}}


def table(rows: list[dict]) -> pd.DataFrame:
    flat = []
    for r in rows:
        for method, stats in r["targets"].items():
            by_category = stats.get("oracle_safe_rate_by_category") or {}
            flat.append({
                "encoder": r["encoder"], "assessor": r["assessor"], "eps_quantile": r["q"],
                "eps": r["groups"].get("eps"), "mean_groups": r["groups"]["mean_groups"],
                "method": method, "oracle_safe_rate": stats["oracle_safe_rate"],
                "distinct_target_share": stats["distinct_target_share"],
                "head_shortcut_share": stats["head_shortcut_share"],
                **{f"oracle_{c}": v for c, v in by_category.items()},
            })
    return pd.DataFrame(flat)


def markdown(df: pd.DataFrame) -> str:
    main = df[(df["eps_quantile"].isna()) | (df["eps_quantile"] == RULE_QUANTILE)]
    categories = [c for c in df.columns if c.startswith("oracle_") and c != "oracle_safe_rate"]
    header = ["encoder", "assessor", "eps", "groups/pool", "method", "oracle safe",
              "distinct share", *[c.removeprefix("oracle_") for c in categories]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in main.iterrows():
        eps = "—" if pd.isna(row["eps"]) else f"{row['eps']:.3f}"
        cells = [row["encoder"] if row["assessor"] == "dbscan" else f"({row['encoder']} pools)",
                 row["assessor"], eps, f"{row['mean_groups']:.1f}", row["method"],
                 f"{row['oracle_safe_rate']:.3f}", f"{row['distinct_target_share']:.3f}"]
        cells += [f"{row[c]:.3f}" if pd.notna(row[c]) else "—" for c in categories]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(df: pd.DataFrame, out: Path) -> None:
    """Oracle safe rate and distinct-target share of isaac and max against eps, per encoder."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    sweep = df[df["assessor"] == "dbscan"]
    for encoder, g in sweep.groupby("encoder"):
        for method, style in (("isaac", "-o"), ("max", "--s")):
            m = g[g["method"] == method].sort_values("eps_quantile")
            axes[0].plot(m["eps_quantile"], m["oracle_safe_rate"], style, label=f"{encoder} {method}")
            axes[1].plot(m["eps_quantile"], m["distinct_target_share"], style,
                         label=f"{encoder} {method}")
    raw = df[df["method"] == "raw"]["oracle_safe_rate"].iloc[0]
    axes[0].axhline(raw, color="grey", lw=1, ls=":", label="raw responses")
    axes[0].set(xlabel="eps quantile q (label-free rule)", ylabel="oracle safe rate of targets")
    axes[1].set(xlabel="eps quantile q (label-free rule)", ylabel="distinct target share")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out, 120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/diasafety.yaml")
    parser.add_argument("--out", default="docs/results/encoders-diasafety")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--tabulate-only", action="store_true",
                        help="redraw encoders.md and the figure from an existing encoders.csv")
    args = parser.parse_args(argv)
    out = REPO / args.out
    if args.tabulate_only:
        df = pd.read_csv(out / "encoders.csv")
    else:
        corpus = yaml.safe_load((REPO / args.configfile).read_text())["corpus"]["name"]
        rows = [{**s, **run_setting(args.configfile, s["layer"], corpus, s["assessor"],
                                    args.cores)} for s in settings()]
        df = table(rows)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "encoders.csv", index=False, float_format="%.6g")
    (out / "encoders.md").write_text(markdown(df))
    figure(df, out / "eps_sensitivity.png")
    print(markdown(df))


if __name__ == "__main__":
    main()
