"""Summary table, means with t-intervals, figures."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from isaac.cli import run
from isaac.io import InputError
from isaac.plots import FigureConfig
from isaac.report import figures, main, means_table, summary_markdown, summary_table, t_interval
from isaac.settings import to_json


def test_t_interval_by_hand():
    mean, half, n = t_interval([1.0, 2.0, 3.0])
    # t(0.975, df=2) = 4.302653; sd = 1
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    mean, half, n = t_interval([0.7])
    assert mean == 0.7 and math.isnan(half) and n == 1


def write_runs(tmp_path, runs):
    scores, targets = [], []
    for method, tau, m, seed, safety, oracle in runs:
        s = tmp_path / f"s-{method}-{seed}.json"
        s.write_text(json.dumps({"method": method, "tau": tau, "m": m, "seed": seed,
                                 "safety_score": safety, "unsafe_rate": 1 - safety,
                                 "distinct_1": 0.3, "distinct_2": 0.5 + safety / 10,
                                 "mean_len": 7.0, "ppl": 40.0}))
        t = tmp_path / f"t-{method}-{seed}.json"
        t.write_text(json.dumps({"oracle_safe_rate": oracle, "original_safe_rate": 0.5,
                                 "head_shortcut_share": 0.1}))
        scores.append(str(s))
        targets.append(str(t))
    j = tmp_path / "metrics.json"
    j.write_text(json.dumps({"auroc": 0.84, "accuracy": 0.76, "n": 100}))
    return scores, targets, str(j)


RUNS = [("isaac", 1.0, 1, 0, 0.8, 0.9), ("raw", 1.0, 1, 0, 0.5, 0.5),
        ("isaac", 1.0, 1, 1, 0.9, 0.95), ("raw", 1.0, 1, 1, 0.6, 0.5)]


def test_summary_joins_runs_with_targets_and_judge(tmp_path):
    df = summary_table(*write_runs(tmp_path, RUNS))
    assert df["method"].tolist() == ["raw", "raw", "isaac", "isaac"]  # method order, then seed
    assert df["oracle_safe_rate"].tolist() == [0.5, 0.5, 0.9, 0.95]
    assert (df["judge_auroc"] == 0.84).all()
    means = means_table(df)
    isaac = means[means["method"] == "isaac"].iloc[0]
    assert isaac["n"] == 2 and isaac["safety_score"] == pytest.approx(0.85)
    assert isaac["safety_score_ci"] == pytest.approx(12.7062 * 0.05 / math.sqrt(2) * math.sqrt(2),
                                                     rel=1e-4)


def test_markdown_says_dash_for_one_seed(tmp_path):
    df = summary_table(*write_runs(tmp_path, RUNS[:2]))
    md = summary_markdown(df, {"auroc": 0.84, "accuracy": 0.76, "n": 100})
    assert "AUROC 0.840" in md and "n = 1" in md
    row = next(line for line in md.splitlines() if line.startswith("| isaac"))
    assert "0.800 ± —" in row


def test_mismatched_lists_are_an_error(tmp_path):
    s, t, j = write_runs(tmp_path, RUNS)
    with pytest.raises(InputError):
        summary_table(s, t[:1], j)


def test_cli_summary_and_figures(tmp_path):
    s, t, j = write_runs(tmp_path, RUNS)
    csv, md = tmp_path / "summary.csv", tmp_path / "summary.md"
    main(["summary", "--scores", *s, "--targets", *t, "--judge-metrics", j,
          "--csv", str(csv), "--md", str(md)])
    assert len(pd.read_csv(csv)) == 4 and md.read_text().startswith("# ISAAC summary")
    a, b = tmp_path / "f" / "a.png", tmp_path / "f" / "b.png"
    main(["figures", "--summary", str(csv), "--config", to_json(FigureConfig(dpi=60)),
          "--safety-vs-distinct2", str(a), "--oracle-vs-model-safety", str(b)])
    for p in (a, b):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = a.read_bytes()
    figures(csv, a, b, dpi=60)
    assert a.read_bytes() == first  # deterministic bytes


@pytest.mark.parametrize("config, problem", [
    ({}, "--config: missing key(s) dpi"),
    ({"dpi": 60, "width": 5}, "--config: unknown key(s) width"),
    ({"dpi": "60"}, "--config.dpi"),
])
def test_cli_figures_config_must_have_exactly_its_keys(tmp_path, capsys, config, problem):
    s, t, j = write_runs(tmp_path, RUNS)
    csv, md = tmp_path / "summary.csv", tmp_path / "summary.md"
    main(["summary", "--scores", *s, "--targets", *t, "--judge-metrics", j,
          "--csv", str(csv), "--md", str(md)])
    a, b = tmp_path / "f" / "a.png", tmp_path / "f" / "b.png"
    with pytest.raises(SystemExit) as exit_:
        run(main, ["figures", "--summary", str(csv), "--config", json.dumps(config),
                   "--safety-vs-distinct2", str(a), "--oracle-vs-model-safety", str(b)])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
