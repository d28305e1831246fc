"""Figures of the sampling stage: the pools' group-size long tail, and oracle safe rate vs tau."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np

from isaac.cli import run
from isaac.io import InputError, read_json, read_table
from isaac.plots import ReportConfig, plt, save_png
from isaac.pools import group_sizes
from isaac.runs import GROUP_METHODS, REFERENCE_METHODS
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.sample_figures")

MAX_RANK = 20


def sorted_group_sizes(groups_path) -> tuple[np.ndarray, np.ndarray]:
    """(sizes by rank (n_pools, max groups), zero-padded, descending; pool lengths)."""
    df = read_table(groups_path, ["group"])
    lists = [np.asarray(x, dtype=np.int64) for x in df["group"].to_list()]
    if not lists:
        raise InputError(f"{groups_path}: no pools")
    lengths = np.array([len(x) for x in lists])
    counts = group_sizes(lengths, np.concatenate(lists))
    return -np.sort(-counts, axis=1), lengths


def plot_group_sizes(groups_path, out, dpi: int, title: str = "") -> None:
    """Left: group size by rank inside a pool (median and 10-90% band). Right: head-group sizes."""
    sizes, _ = sorted_group_sizes(groups_path)
    ranks = min(MAX_RANK, int((sizes > 0).sum(axis=1).max()))  # every rank some pool has
    by_rank = sizes[:, :ranks].astype(float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, ranks + 1)
    masked = np.where(by_rank > 0, by_rank, np.nan)
    q10, q50, q90 = (np.nanquantile(masked, q, axis=0) for q in (0.1, 0.5, 0.9))
    mean = np.nanmean(masked, axis=0)
    left.fill_between(x, q10, q90, alpha=0.25, label="10-90% of pools")
    left.plot(x, q50, marker="o", label="median")
    left.plot(x, mean, linestyle="--", label="mean")
    left.set_yscale("log")
    left.set_xlabel("group rank in pool (1 = largest)")
    left.set_ylabel("group size (members)")
    left.set_title("Long tail inside a pool")
    left.legend()
    head = sizes[:, 0]
    bins = np.unique(np.round(np.logspace(0, np.log10(max(head.max(), 2)) + 1e-9, 25)))
    right.hist(head, bins=np.append(bins, bins[-1] + 1), color="C1")
    right.set_xscale("log")
    right.set_xlabel("size of the largest group N_1")
    right.set_ylabel("pools")
    right.set_title(f"Head group ({np.mean(head <= 1):.0%} of pools all singletons)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, out, dpi)


def plot_oracle_vs_tau(stats_paths: Sequence[str], out, dpi: int, title: str = "") -> None:
    """Oracle safe rate of sampled targets vs tau per method; raw/random/original as lines."""
    curves: dict[str, list[tuple[float, float]]] = {}
    lines: dict[str, float] = {}
    original = None
    for path in stats_paths:
        stats = read_json(path)
        for key in ("method", "tau", "oracle_safe_rate"):
            if key not in stats:
                raise InputError(f"{path}: missing key {key!r}")
        rate = stats["oracle_safe_rate"]
        original = stats.get("original_safe_rate", original)
        if rate is None:
            continue
        if stats["method"] in GROUP_METHODS:
            curves.setdefault(stats["method"], []).append((float(stats["tau"]), float(rate)))
        elif stats["method"] in REFERENCE_METHODS:
            lines[stats["method"]] = float(rate)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not curves and not lines:
        ax.text(
            0.5,
            0.5,
            "corpus has no safety labels:\nno oracle safe rate",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    else:
        for i, method in enumerate(GROUP_METHODS):
            if method in curves:
                points = sorted(curves[method])
                ax.plot(*zip(*points), marker="o", color=f"C{i}", label=method)
        styles = {"raw": ("k", ":"), "random": ("grey", "--")}
        for method, rate in sorted(lines.items()):
            color, style = styles[method]
            ax.axhline(rate, color=color, linestyle=style, label=f"{method} ({rate:.3f})")
        ax.set_xscale("log")
        ax.set_xlabel("temperature tau")
        ax.set_ylabel("oracle safe rate of targets")
        ax.set_title(title or "Safety of sampled targets vs temperature")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out, dpi)


def groups_title(stats_path) -> str:
    """ "{assessor} groups, {encoder} embeddings" from the statistics beside a groups table."""
    stats = read_json(stats_path)
    encoder = stats.get("encoder")
    return f"{stats['assessor']} groups" + (f", {encoder} embeddings" if encoder else "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    g = sub.add_parser("group-sizes", help="group-size long tail from groups/{assessor}.parquet")
    g.add_argument("--groups", required=True)
    g.add_argument(
        "--groups-stats",
        required=True,
        help="groups/{assessor}.json: the assessor and encoder named in the title",
    )
    o = sub.add_parser("oracle-vs-tau", help="oracle safe rate vs tau from target stats JSONs")
    o.add_argument("--stats", nargs="+", required=True)
    o.add_argument("--title", default="")
    for p in (g, o):
        add_config_argument(p, ReportConfig)
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = parse(ReportConfig, args.config)
    if args.figure == "group-sizes":
        plot_group_sizes(args.groups, args.out, config.dpi, groups_title(args.groups_stats))
    else:
        plot_oracle_vs_tau(args.stats, args.out, config.dpi, args.title)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
