"""The summary: runs.csv, summary.csv with paired bootstrap intervals, summary.md, figures.

The inputs are built the way the workflow writes them: scores/{run}.json and scores/{run}.parquet
as isaac.score writes them (per-prompt id, seen, unsafe, unsafe_prob, unsafe_second,
lexical_unsafe), targets/{run}.json as isaac.sample writes its statistics, judge metrics.json as
isaac.judge writes them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac.bootstrap import SummaryConfig
from isaac.cli import run
from isaac.io import InputError, write_json, write_parquet
from isaac.plots import ReportConfig
from isaac.report import (
    MEASURES,
    TARGET_STATS,
    figures,
    main,
    runs_table,
    score_matrices,
    summary_markdown,
    write_summary,
)
from isaac.runs import METHODS, RUN, fmt_tau
from isaac.settings import to_json

N = 20  # unseen prompts
SEEN_AT = (1, 6)  # positions of the two prompts seen in training among the generations


def config(**overrides) -> SummaryConfig:
    return settings(SummaryConfig, "summary", **overrides)


def run_id(key) -> str:
    method, tau, m, seed = key
    return RUN.format(method=method, tau=fmt_tau(tau), m=m, seed=seed)


def per_prompt_table(
    unsafe, seen_unsafe=(True, False), ids=None, relevance=None, second=None
) -> pd.DataFrame:
    """isaac.score's per-prompt table: the unseen verdicts `unsafe` in order, with two seen
    prompts interleaved (the summary must leave them out); the unseen prompts' `relevance`
    (by default a spread with mean 0.5) and second judge's verdicts `second` (none by default)."""
    unsafe = [bool(u) for u in unsafe]
    n = len(unsafe) + len(SEEN_AT)
    ids = ids or [f"t{i:03d}" for i in range(n)]
    relevance = [(i % 5) / 4 for i in range(len(unsafe))] if relevance is None else relevance
    second = [pd.NA] * len(unsafe) if second is None else [bool(v) for v in second]
    positions = iter(range(len(unsafe)))
    order = [None if i in SEEN_AT else next(positions) for i in range(n)]
    seen_iter = iter(seen_unsafe)
    verdicts = [next(seen_iter) if k is None else unsafe[k] for k in order]
    return pd.DataFrame(
        {
            "id": ids,
            "seen": [k is None for k in order],
            "unsafe": verdicts,
            "unsafe_prob": [0.9 if v else 0.1 for v in verdicts],
            "unsafe_second": pd.Series(
                [pd.NA if k is None else second[k] for k in order], dtype="boolean"
            ),
            "lexical_unsafe": [False] * n,
            "copied": [False] * n,
            "copied_exact": [False] * n,
            "copied_unsafe": pd.Series([pd.NA] * n, dtype="boolean"),
            "relevance": [np.nan if k is None else relevance[k] for k in order],
        }
    )


def score_json(key, table: pd.DataFrame) -> dict:
    """isaac.score's JSON of one run (its scores over the unseen prompts)."""
    method, tau, m, seed = key
    unseen = table[~table["seen"]]
    seen = table[table["seen"]]
    rate = float(unseen["unsafe"].mean())
    second = unseen["unsafe_second"]
    return {
        "method": method,
        "tau": float(tau),
        "m": m,
        "seed": seed,
        "n": int(len(unseen)),
        "unsafe_rate": rate,
        "safety_score": 1.0 - rate,
        "mean_unsafe_prob": float(unseen["unsafe_prob"].mean()),
        "lexical_unsafe_rate": 0.0,
        "safety_score_second": None if second.isna().any() else 1.0 - float(second.mean()),
        "judges_agreement": None,
        "distinct_1": 0.3,
        "distinct_2": 0.5 + (1.0 - rate) / 10,
        "mean_len": 7.0,
        "empty_share": 0.0,
        "n_seen": int(len(seen)),
        "safety_score_seen": 1.0 - float(seen["unsafe"].mean()),
        "ppl": 40.0,
        "ppl_safe": 30.0,
        "relevance": float(unseen["relevance"].mean()),
        "copy_share": 0.1,
        "exact_copy_share": 0.05,
        "safety_score_noncopied": 1.0 - rate,
        "safety_score_copy_label": 1.0 - rate,
    }


def stats_json(key, oracle) -> dict:
    """isaac.sample's statistics of one run's targets."""
    method, tau, m, seed = key
    return {
        "n": 60,
        "n_targets": 60 * m,
        "original_safe_rate": 0.5,
        "oracle_safe_rate": oracle,
        "head_shortcut_share": 0.1,
        "mean_si": None,
        "mean_n_groups": None,
        "head_group_size": None,
        "distinct_target_share": 0.9,
        "method": method,
        "tau": float(tau),
        "m": m,
        "seed": seed,
        "top_k_groups": None,
        "head_shortcut": None,
        "assessor": None,
        "encoder": None,
        "eps": None,
        "pool": None,
        "k": None,
    }


def judge_metrics(features="tfidf-lr", threshold=0.42) -> dict:
    """isaac.judge's metrics.json."""
    return {
        "features": features,
        "n_train": 100,
        "threshold": threshold,
        "threshold_from": "val",
        "val": {
            "auroc": 0.9,
            "accuracy": 0.8,
            "balanced_accuracy": 0.79,
            "n": 40,
            "unsafe_share": 0.5,
        },
        "auroc": 0.84,
        "accuracy": 0.76,
        "balanced_accuracy": 0.75,
        "n": 100,
        "unsafe_share": 0.5,
        "unseen": {
            "auroc": 0.81,
            "accuracy": 0.7,
            "balanced_accuracy": 0.72,
            "n": 58,
            "unsafe_share": 0.45,
        },
    }


def write_sweep(tmp_path, runs: dict, oracle=None, tables=None):
    """The files of a sweep: `runs` maps (method, tau, m, seed) to its unseen unsafe verdicts
    (or `tables` to a ready per-prompt table). Returns (scores, per_prompt, targets, judges)."""
    scores, per_prompt, targets = [], [], []
    tables = dict(tables or {})
    for key, unsafe in runs.items():
        table = tables.get(key)
        if table is None:
            table = per_prompt_table(unsafe)
        rid = run_id(key)
        s = tmp_path / "scores" / f"{rid}.json"
        p = tmp_path / "scores" / f"{rid}.parquet"
        t = tmp_path / "targets" / f"{rid}.json"
        write_parquet(table, p)
        write_json(score_json(key, table), s)
        write_json(stats_json(key, (oracle or {}).get(key, 0.5)), t)
        scores.append(str(s))
        per_prompt.append(str(p))
        targets.append(str(t))
    j = tmp_path / "judge" / "metrics.json"
    write_json(judge_metrics(), j)
    j2 = tmp_path / "judge2" / "metrics.json"
    write_json(judge_metrics("minilm-lr", 0.37), j2)
    return scores, per_prompt, targets, {"Primary": str(j), "Second": str(j2)}


def summarise(tmp_path, runs, cfg=None, name="out", **kwargs) -> pd.DataFrame:
    """write_summary over a sweep; the three outputs under tmp_path/name."""
    scores, per_prompt, targets, judges = write_sweep(tmp_path, runs, **kwargs)
    out = tmp_path / name
    return write_summary(
        scores,
        per_prompt,
        targets,
        judges,
        cfg or config(),
        out / "runs.csv",
        out / "summary.csv",
        out / "summary.md",
    )


def row(table: pd.DataFrame, method, tau=1.0, m=1) -> pd.Series:
    hit = table[(table["method"] == method) & (table["tau"] == tau) & (table["m"] == m)]
    assert len(hit) == 1, (method, tau, m)
    return hit.iloc[0]


RAW_UNSAFE = [1] * 8 + [0] * 12  # raw is unsafe on the first 8 of 20 unseen prompts
ALL_SAFE = [0] * N


# ---------------------------------------------------------------- (a) a known improvement


def test_method_safe_where_raw_is_unsafe_has_the_exact_delta_and_an_interval_above_0(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): RAW_UNSAFE,
        ("isaac", 0.5, 1, 0): ALL_SAFE,
    }
    table = summarise(tmp_path, runs)
    isaac, raw = row(table, "isaac", 0.5), row(table, "raw")
    assert (isaac["n_seeds"], isaac["n_prompts"]) == (1, N)  # the two seen prompts left out
    assert raw["safety_score"] == pytest.approx(12 / 20, abs=1e-12)
    assert isaac["safety_score"] == 1.0
    assert isaac["delta_raw"] == pytest.approx(8 / 20, abs=1e-12)  # exact mean difference
    assert isaac["delta_sft"] == pytest.approx(8 / 20, abs=1e-12)
    assert 0 < isaac["delta_raw_lo"] <= 0.4 <= isaac["delta_raw_hi"] <= 1
    # the percentile interval of a mean of 20 Bernoulli(0.4) values: about 0.4 -+ 1.96 * 0.11
    half = 1.96 * np.sqrt(0.4 * 0.6 / N)
    assert isaac["delta_raw_hi"] - isaac["delta_raw_lo"] == pytest.approx(2 * half, rel=0.25)
    # an all-safe method has no spread; raw's own safety interval covers its score
    assert (isaac["safety_lo"], isaac["safety_hi"]) == (1.0, 1.0)
    assert raw["safety_lo"] < 0.6 < raw["safety_hi"]


def test_the_sft_gap_closed_is_a_methods_gain_over_raw_as_a_share_of_sfts(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): ALL_SAFE,
        ("isaac", 1.0, 1, 0): [1] * 4 + [0] * 16,  # 16 of 20 safe where raw has 12
    }
    table = summarise(tmp_path, runs)
    assert row(table, "isaac")["sft_gap_closed"] == pytest.approx((16 - 12) / (20 - 12))
    assert row(table, "sft")["sft_gap_closed"] == 1.0
    assert row(table, "raw")["sft_gap_closed"] == 0.0


def test_seen_prompts_do_not_enter_the_comparison(tmp_path):
    """isaac is unsafe on both seen prompts, raw on neither: the deltas do not move."""
    tables = {
        ("raw", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE, seen_unsafe=(False, False)),
        ("sft", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE, seen_unsafe=(False, False)),
        ("isaac", 1.0, 1, 0): per_prompt_table(ALL_SAFE, seen_unsafe=(True, True)),
    }
    table = summarise(tmp_path, dict.fromkeys(tables), tables=tables)
    assert row(table, "isaac")["delta_raw"] == pytest.approx(0.4, abs=1e-12)
    assert row(table, "isaac")["safety_score"] == 1.0


# ---------------------------------------------------------------- (b) no difference


def test_identical_tables_give_delta_0_with_interval_0_0(tmp_path):
    mixed = [i % 3 == 0 for i in range(N)]
    runs = {
        ("raw", 1.0, 1, 0): mixed,
        ("sft", 1.0, 1, 0): RAW_UNSAFE,
        ("random", 1.0, 1, 0): mixed,
        ("raw", 1.0, 1, 1): RAW_UNSAFE,
        ("sft", 1.0, 1, 1): RAW_UNSAFE,
        ("random", 1.0, 1, 1): RAW_UNSAFE,
    }
    table = summarise(tmp_path, runs)
    for method in ("random", "raw"):
        r = row(table, method)
        assert (r["delta_raw"], r["delta_raw_lo"], r["delta_raw_hi"]) == (0.0, 0.0, 0.0)
    sft = row(table, "sft")
    assert (sft["delta_sft"], sft["delta_sft_lo"], sft["delta_sft_hi"]) == (0.0, 0.0, 0.0)
    # random equals raw but not sft: that difference has an interval
    assert row(table, "random")["delta_sft_lo"] < row(table, "random")["delta_sft_hi"]


# ---------------------------------------------------------------- (c) the seed


MIXED = (
    {  # 50 prompts, differences of both signs, two seeds
        ("raw", 1.0, 1, s): [(i * (3 + s)) % 5 < 2 for i in range(50)] for s in (0, 1)
    }
    | {("sft", 1.0, 1, s): [(i * (7 + s)) % 4 == 0 for i in range(50)] for s in (0, 1)}
    | {("isaac", 0.5, 1, s): [(i * (2 + s)) % 7 == 0 for i in range(50)] for s in (0, 1)}
)
INTERVALS = [
    "safety_lo",
    "safety_hi",
    "delta_raw_lo",
    "delta_raw_hi",
    "delta_sft_lo",
    "delta_sft_hi",
]


def test_the_same_seed_gives_identical_bytes_another_seed_other_intervals(tmp_path):
    cfg = config(resamples=200, seed=11)
    a = summarise(tmp_path, MIXED, cfg, name="a")
    b = summarise(tmp_path, MIXED, cfg, name="b")
    for name in ("summary.csv", "summary.md", "runs.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    pd.testing.assert_frame_equal(a, b)
    c = summarise(tmp_path, MIXED, config(resamples=200, seed=12), name="c")
    points = ["safety_score", "delta_raw", "delta_sft"]
    pd.testing.assert_frame_equal(a[points], c[points])  # the estimates do not depend on it
    assert not np.allclose(a[INTERVALS].to_numpy(), c[INTERVALS].to_numpy())
    csv = "summary.csv"
    assert (tmp_path / "a" / csv).read_bytes() != (tmp_path / "c" / csv).read_bytes()


# ---------------------------------------------------------------- (d) seeds are resampled


def test_seeds_are_resampled_when_prompts_agree_but_seeds_differ(tmp_path):
    """raw is unsafe on every prompt with seed 0 and safe on every prompt with seed 1; isaac is
    always safe. Resampling prompts alone would give the degenerate interval [0.5, 0.5]; seeds
    drawn with replacement give means 0, 0.5, 1 with probability 1/4, 1/2, 1/4."""
    runs = {
        ("raw", 1.0, 1, 0): [1] * N,
        ("raw", 1.0, 1, 1): [0] * N,
        ("sft", 1.0, 1, 0): [0] * N,
        ("sft", 1.0, 1, 1): [0] * N,
        ("isaac", 1.0, 1, 0): ALL_SAFE,
        ("isaac", 1.0, 1, 1): ALL_SAFE,
    }
    table = summarise(tmp_path, runs)
    raw, isaac = row(table, "raw"), row(table, "isaac")
    assert (raw["n_seeds"], raw["n_prompts"]) == (2, N)
    assert raw["safety_score"] == 0.5 and (raw["safety_lo"], raw["safety_hi"]) == (0.0, 1.0)
    assert isaac["delta_raw"] == 0.5
    assert (isaac["delta_raw_lo"], isaac["delta_raw_hi"]) == (0.0, 1.0)
    assert (isaac["delta_sft"], isaac["delta_sft_lo"], isaac["delta_sft_hi"]) == (0, 0, 0)


def test_means_over_seeds_sit_beside_the_intervals(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("raw", 1.0, 1, 1): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): ALL_SAFE,
        ("sft", 1.0, 1, 1): ALL_SAFE,
    }
    oracle = {
        ("raw", 1.0, 1, 0): 0.5,
        ("raw", 1.0, 1, 1): 0.6,
        ("sft", 1.0, 1, 0): 1.0,
        ("sft", 1.0, 1, 1): 1.0,
    }
    table = summarise(tmp_path, runs, oracle=oracle)
    assert row(table, "raw")["oracle_safe_rate"] == pytest.approx(0.55)
    assert row(table, "sft")["oracle_safe_rate"] == 1.0
    assert row(table, "raw")["ppl_safe"] == 30.0
    assert table["safety_score_second"].isna().all()  # no second judge scored these runs


def test_each_m_is_compared_with_the_baselines_of_the_same_m(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): RAW_UNSAFE,
        ("raw", 1.0, 2, 0): ALL_SAFE,
        ("sft", 1.0, 2, 0): ALL_SAFE,
        ("isaac", 1.0, 1, 0): ALL_SAFE,
        ("isaac", 1.0, 2, 0): ALL_SAFE,
    }
    table = summarise(tmp_path, runs)
    assert row(table, "isaac", m=1)["delta_raw"] == pytest.approx(0.4, abs=1e-12)
    assert row(table, "isaac", m=2)["delta_raw"] == 0.0
    assert table[["method", "m"]].values.tolist() == [
        ["raw", 1],
        ["raw", 2],
        ["sft", 1],
        ["sft", 2],
        ["isaac", 1],
        ["isaac", 2],
    ]


# ---------------------------------------------------------------- every bootstrapped measure


RELEVANT = [0.9] * N  # answers its own context better than 90% of the others'
BLAND = [(i % 5) / 4 for i in range(N)]  # no better than chance: mean 0.5


def test_every_measure_gets_an_interval_and_its_differences(tmp_path):
    """The second judge's safety and relevance get the same paired bootstrap as the primary
    judge's safety, under columns derived by one rule."""
    tables = {
        ("raw", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE, relevance=BLAND, second=RAW_UNSAFE),
        ("sft", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE, relevance=BLAND, second=[0] * N),
        ("isaac", 0.5, 1, 0): per_prompt_table(ALL_SAFE, relevance=RELEVANT, second=[1] * N),
    }
    table = summarise(tmp_path, dict.fromkeys(tables), tables=tables)
    for measure in MEASURES:
        for _, r in table.iterrows():
            v, lo, hi = (r[measure.value], r[f"{measure.interval}_lo"], r[f"{measure.interval}_hi"])
            assert lo <= v <= hi, (measure, r["method"])
            for base in ("raw", "sft"):
                d = measure.delta_of(base)
                assert r[f"{d}_lo"] <= r[d] <= r[f"{d}_hi"], (measure, r["method"], base)
    isaac, raw = row(table, "isaac", 0.5), row(table, "raw")
    assert (
        raw["relevance"] == pytest.approx(0.5) and raw["relevance_lo"] < 0.5 < raw["relevance_hi"]
    )
    assert isaac["relevance"] == pytest.approx(0.9)
    assert (isaac["relevance_lo"], isaac["relevance_hi"]) == pytest.approx((0.9, 0.9))
    assert (
        isaac["delta_relevance_raw"] == pytest.approx(0.4) and isaac["delta_relevance_raw_lo"] > 0
    )
    assert raw["safety_score_second"] == pytest.approx(0.6)
    assert isaac["safety_score_second"] == 0.0 and row(table, "sft")["safety_score_second"] == 1.0
    assert isaac["delta_second_raw"] == pytest.approx(-0.6) and isaac["delta_second_raw_hi"] < 0
    assert (isaac["delta_second_sft"], isaac["delta_second_sft_hi"]) == (-1.0, -1.0)
    # the primary judge's columns are those of a summary without the other measures
    assert isaac["delta_raw"] == pytest.approx(0.4) and row(table, "sft")["delta_raw"] == 0.0
    md = (tmp_path / "out" / "summary.md").read_text()
    safety, other = md_rows(md, 0)[("isaac", 0.5, 1)], md_rows(md, 1)[("isaac", 0.5, 1)]
    assert safety[6] == "0.000 [0.000, 0.000]"  # second judge
    assert (
        other[3] == "0.900 [0.900, 0.900]"
        and other[4].startswith("+0.400 [")
        and other[4].endswith(" *")
    )
    assert other[6] == "0.100"  # copy share: the mean of the runs' copy_share


def test_runs_and_summary_carry_the_copy_scores(tmp_path):
    runs = {("raw", 1.0, 1, s): RAW_UNSAFE for s in (0, 1)} | {
        ("sft", 1.0, 1, s): ALL_SAFE for s in (0, 1)
    }
    table = summarise(tmp_path, runs)
    written = pd.read_csv(tmp_path / "out" / "runs.csv")
    for column in ("relevance", "copy_share", "exact_copy_share", "safety_score_noncopied"):
        assert column in written and column in table
    assert written["safety_score_copy_label"].tolist() == pytest.approx([0.6, 0.6, 1.0, 1.0])
    assert row(table, "raw")["exact_copy_share"] == pytest.approx(0.05)
    # no second judge: its measure and its differences are empty
    columns = ["safety_score_second", "safety_second_lo", "delta_second_raw", "delta_second_sft_hi"]
    assert table[columns].isna().all().all()
    assert md_rows((tmp_path / "out" / "summary.md").read_text())[("raw", 1.0, 1)][6] == "—"


def test_a_per_prompt_table_without_relevance_is_an_error_naming_it(tmp_path):
    path = tmp_path / "old.parquet"
    write_parquet(per_prompt_table(RAW_UNSAFE).drop(columns="relevance"), path)
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*missing column.s. relevance"):
        score_matrices([str(path)])


# ---------------------------------------------------------------- (e) errors


def test_runs_whose_prompts_differ_are_an_error_naming_the_file(tmp_path):
    tables = {
        ("raw", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE),
        ("raw", 1.0, 1, 1): per_prompt_table(RAW_UNSAFE, ids=[f"u{i:03d}" for i in range(N + 2)]),
        ("sft", 1.0, 1, 0): per_prompt_table(ALL_SAFE),
        ("sft", 1.0, 1, 1): per_prompt_table(ALL_SAFE),
    }
    s, p, t, j = write_sweep(tmp_path, dict.fromkeys(tables), tables=tables)
    bad = next(path for path in p if "seed1" in path and "raw" in path)
    with pytest.raises(InputError, match=re.escape(bad) + ": its prompts differ"):
        write_summary(
            s, p, t, j, config(), tmp_path / "r.csv", tmp_path / "s.csv", tmp_path / "s.md"
        )
    assert not any(tmp_path.glob("*.csv")) and not (tmp_path / "s.md").exists()


def test_the_same_prompts_in_another_order_are_an_error(tmp_path):
    ids = [f"t{i:03d}" for i in range(N + 2)]
    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    write_parquet(per_prompt_table(RAW_UNSAFE, ids=ids), a)
    write_parquet(per_prompt_table(RAW_UNSAFE, ids=ids[::-1]), b)
    with pytest.raises(InputError, match=re.escape(str(b)) + ": its prompts differ"):
        score_matrices([str(a), str(b)])
    matrices, got = score_matrices([str(a), str(a)])
    assert matrices["safety_score"].shape == (2, N) and got.tolist() == [
        i for k, i in enumerate(ids) if k not in SEEN_AT
    ]


def test_methods_that_answered_other_prompts_are_an_error_naming_the_file(tmp_path):
    other = [f"u{i:03d}" for i in range(N + 2)]
    tables = {
        ("raw", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE),
        ("sft", 1.0, 1, 0): per_prompt_table(RAW_UNSAFE),
        ("isaac", 1.0, 1, 0): per_prompt_table(ALL_SAFE, ids=other),
    }
    s, p, t, j = write_sweep(tmp_path, dict.fromkeys(tables), tables=tables)
    bad = next(path for path in p if "isaac" in path)
    with pytest.raises(InputError, match=re.escape(bad)):
        write_summary(
            s, p, t, j, config(), tmp_path / "r.csv", tmp_path / "s.csv", tmp_path / "s.md"
        )


def test_a_missing_baseline_is_an_error(tmp_path):
    runs = {("raw", 1.0, 1, 0): RAW_UNSAFE, ("isaac", 1.0, 1, 0): ALL_SAFE}
    with pytest.raises(InputError, match="no sft run with m=1 to compare with"):
        summarise(tmp_path, runs)
    assert not (tmp_path / "out").exists()
    # a baseline run with m=1 does not cover m=2
    runs = {
        ("raw", 1.0, 2, 0): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): RAW_UNSAFE,
        ("isaac", 1.0, 2, 0): ALL_SAFE,
    }
    with pytest.raises(InputError, match="no sft run with m=2"):
        summarise(tmp_path, runs, config(baselines=["raw", "sft"]), name="out2")
    # with baselines [raw] the m=2 runs are fine
    del runs[("sft", 1.0, 1, 0)]
    summarise(tmp_path, runs, config(baselines=["raw"]), name="out3")
    assert "delta_sft" not in pd.read_csv(tmp_path / "out3" / "summary.csv")


def test_no_baselines_give_a_summary_without_differences(tmp_path):
    """A trained_encoders point's summary: its methods only, no raw (the experiment's table
    pairs them with its corpus's raw)."""
    runs = {("isaac", 0.5, 1, 0): RAW_UNSAFE, ("max", 1.0, 1, 0): ALL_SAFE}
    table = summarise(tmp_path, runs, config(baselines=[]))
    assert not [c for c in table.columns if c.startswith("delta")]
    assert table["sft_gap_closed"].isna().all()
    assert row(table, "isaac", 0.5)["safety_score"] == pytest.approx(12 / 20)
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "no differences (summary.baselines is empty)." in md and "Δ" not in md
    assert md_rows(md)[("max", 1.0, 1)][3] == "1.000 [1.000, 1.000]"


def test_runs_with_other_seeds_or_prompt_counts_are_an_error(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("raw", 1.0, 1, 1): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): RAW_UNSAFE,
    }
    with pytest.raises(InputError, match="runs differ in seeds or prompts"):
        summarise(tmp_path, runs)
    runs = {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): RAW_UNSAFE[:-1]}
    with pytest.raises(InputError, match="its prompts differ from the other methods'"):
        summarise(tmp_path, runs, name="out2")
    # the same number of seeds, but other seeds: not paired
    runs = {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 1): RAW_UNSAFE}
    with pytest.raises(InputError, match="raw and sft ran with different seeds"):
        summarise(tmp_path, runs, name="out3")


def test_mismatched_lists_are_an_error(tmp_path):
    s, p, t, _ = write_sweep(
        tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE}
    )
    with pytest.raises(InputError, match="differ in length"):
        runs_table(s, t[:1])


def test_a_score_file_without_its_run_keys_is_an_error(tmp_path):
    s, p, t, _ = write_sweep(tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE})
    data = json.loads(open(s[0]).read())
    del data["seed"]
    write_json(data, s[0])
    with pytest.raises(InputError, match=re.escape(s[0]) + ": missing key.s. seed"):
        runs_table(s, t)


# ---------------------------------------------------------------- runs.csv and summary.md


def test_runs_table_joins_scores_with_target_stats_in_method_order(tmp_path):
    runs = {
        ("isaac", 1.0, 1, 0): ALL_SAFE,
        ("raw", 1.0, 1, 1): RAW_UNSAFE,
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("isaac", 0.5, 1, 0): ALL_SAFE,
    }
    oracle = {
        ("isaac", 1.0, 1, 0): 0.9,
        ("raw", 1.0, 1, 1): 0.51,
        ("raw", 1.0, 1, 0): 0.5,
        ("isaac", 0.5, 1, 0): 0.95,
    }
    s, _, t, _ = write_sweep(tmp_path, runs, oracle=oracle)
    df = runs_table(s, t)
    assert df[["method", "tau", "seed"]].values.tolist() == [
        ["raw", 1.0, 0],
        ["raw", 1.0, 1],
        ["isaac", 0.5, 0],
        ["isaac", 1.0, 0],
    ]
    assert df["oracle_safe_rate"].tolist() == [0.5, 0.51, 0.95, 0.9]
    assert df["safety_score"].tolist() == pytest.approx([0.6, 0.6, 1.0, 1.0])
    assert (df["head_shortcut_share"] == 0.1).all() and (df["n_seen"] == 2).all()


def test_a_model_free_run_has_no_target_stats_and_can_be_a_baseline(tmp_path):
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("constant", 1.0, 1, 0): ALL_SAFE,
        ("isaac", 1.0, 1, 0): ALL_SAFE,
    }
    s, p, t, j = write_sweep(tmp_path, runs, oracle={("raw", 1.0, 1, 0): 0.5})
    targets = [path for path in t if "constant" not in path]  # constant has no targets
    df = runs_table(s, targets).set_index("method")
    assert df.loc["constant", TARGET_STATS].isna().all()
    assert df.loc["raw", "oracle_safe_rate"] == 0.5 and df.loc["isaac", "oracle_safe_rate"] == 0.5
    with pytest.raises(InputError, match="differ in length"):
        runs_table(s, t)  # target stats given for constant too
    out = tmp_path / "out"
    table = write_summary(
        s,
        p,
        targets,
        j,
        config(baselines=["raw", "constant"]),
        out / "r.csv",
        out / "s.csv",
        out / "s.md",
    ).set_index("method")
    assert table.loc["isaac", "delta_constant"] == 0 and table.loc["raw", "delta_constant"] < 0


def md_rows(md: str, table: int = 0) -> dict[tuple, list[str]]:
    """The rows of summary.md's `table`-th table (0: safety, 1: relevance, copies, diversity)
    by (method, tau, m): their cells."""
    out, current = {}, -1
    for line in md.splitlines():
        if line.startswith("| method"):
            current += 1
        elif line.startswith("| ") and current == table:
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[(cells[0], float(cells[1]), int(cells[2]))] = cells
    return out


def test_markdown_stars_exactly_the_differences_whose_interval_excludes_0(tmp_path):
    mixed = [i % 2 for i in range(N)]
    worse = [1] * 12 + [0] * 8  # unsafe on raw's 8 and 4 more
    noisy = RAW_UNSAFE[2:] + [1, 1]  # 8 unsafe prompts, 6 shared with raw
    runs = {
        ("raw", 1.0, 1, 0): RAW_UNSAFE,
        ("sft", 1.0, 1, 0): mixed,
        ("isaac", 0.5, 1, 0): ALL_SAFE,  # better than raw: *
        ("random", 1.0, 1, 0): RAW_UNSAFE,  # identical to raw: no *
        ("exp", 0.5, 1, 0): worse,  # worse than raw: * (interval below 0)
        ("max", 0.5, 1, 0): noisy,
    }  # as often unsafe as raw, on other prompts: no *
    table = summarise(tmp_path, runs)
    md = (tmp_path / "out" / "summary.md").read_text()
    cells = md_rows(md)
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:6] == ["method", "tau", "m", "safety", "Δ raw", "Δ sft"]
    starred = {}
    for _, r in table.iterrows():
        key = (r["method"], r["tau"], r["m"])
        for i, base in enumerate(("raw", "sft")):
            cell = cells[key][4 + i]
            excludes = r[f"delta_{base}_lo"] > 0 or r[f"delta_{base}_hi"] < 0
            assert cell.endswith(" *") == excludes, (key, base, cell)
            assert cell.startswith(f"{r[f'delta_{base}']:+.3f} [{r[f'delta_{base}_lo']:+.3f}, ")
            starred[(r["method"], base)] = cell.endswith(" *")
    assert starred[("isaac", "raw")] and starred[("exp", "raw")]
    assert not starred[("random", "raw")] and not starred[("max", "raw")]
    assert not starred[("raw", "raw")] and not starred[("sft", "sft")]
    assert row(table, "exp", 0.5)["delta_raw_hi"] < 0
    lo, hi = row(table, "max", 0.5)[["delta_raw_lo", "delta_raw_hi"]]
    assert lo < 0 < hi and row(table, "max", 0.5)["delta_raw"] == 0.0
    assert cells[("isaac", 0.5, 1)][3] == "1.000 [1.000, 1.000]"


def test_markdown_reports_both_judges_and_the_bootstrap(tmp_path):
    runs = {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE}
    summarise(tmp_path, runs, config(resamples=300))
    md = (tmp_path / "out" / "summary.md").read_text()
    assert md.startswith("# ISAAC summary\n")
    assert (
        "Primary judge (tfidf-lr): threshold 0.420 (chosen on val); test AUROC 0.840, "
        "balanced accuracy 0.750 (n = 100); on test contexts unseen in train AUROC 0.810, "
        "balanced accuracy 0.720 (n = 58)."
    ) in md
    assert "Second judge (minilm-lr): threshold 0.370" in md
    assert f"over {N} test prompts unseen in training x 1 seed(s)" in md
    assert "(300 resamples over prompts and seeds)" in md
    # no second-judge score in these runs: a dash, not a number
    raw = md_rows(md)[("raw", 1.0, 1)]
    assert raw[6] == "—" and raw[-1] == "0.500"


def test_summary_markdown_lists_only_the_given_judges(tmp_path):
    table = summarise(tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE})
    md = summary_markdown(table, config(), {"Primary": judge_metrics()})
    assert "Primary judge" in md and "Second judge" not in md
    legacy = {k: v for k, v in judge_metrics().items() if k not in ("threshold", "unseen")}
    md = summary_markdown(table, config(), {"Primary": legacy})
    assert "threshold — (chosen on val)" in md and "unseen in train AUROC —" in md


def test_the_independent_judge_is_reported_by_its_fit_rows_and_unseen_contexts(tmp_path):
    table = summarise(tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE})
    heldout = {
        "features": "tfidf-lr",
        "fit": "heldout",
        "n_fit": 1523,
        "threshold": 0.41,
        "threshold_from": "cv",
        "unseen": {"auroc": 0.7, "balanced_accuracy": 0.65, "n": 632},
    }
    md = summary_markdown(table, config(), {"Primary": judge_metrics(), "Second": heldout})
    assert (
        "Second judge (tfidf-lr, independent: fitted on 1523 val and seen-context test rows, "
        "none a train response): threshold 0.410 (chosen by cross-validation on them); on test "
        "contexts unseen in train AUROC 0.700, balanced accuracy 0.650 (n = 632)."
    ) in md
    assert "Primary judge (tfidf-lr): threshold 0.420 (chosen on val); test AUROC" in md


# ---------------------------------------------------------------- CLI, figures


def summary_argv(s, p, t, j, out, cfg: str | None = None, second=True):
    argv = [
        "summary",
        "--scores",
        *s,
        "--per-prompt",
        *p,
        "--targets",
        *t,
        "--judge",
        str(Path(j["Primary"]).parent),
    ]
    if second:
        argv += ["--second-judge", str(Path(j["Second"]).parent)]
    return argv + [
        "--config",
        cfg if cfg is not None else to_json(config()),
        "--runs",
        str(out / "runs.csv"),
        "--csv",
        str(out / "summary.csv"),
        "--md",
        str(out / "summary.md"),
        "--provenance",
        str(out / "provenance.json"),
    ]


def test_cli_summary_and_figures(tmp_path):
    s, p, t, j = write_sweep(tmp_path, MIXED)
    out = tmp_path / "out"
    main(summary_argv(s, p, t, j, out))
    csv = out / "summary.csv"
    table = pd.read_csv(csv)
    assert len(table) == 3 and len(pd.read_csv(out / "runs.csv")) == 6
    assert {
        "safety_lo",
        "safety_hi",
        "delta_raw_lo",
        "delta_sft_hi",
        "n_seeds",
        "n_prompts",
    } <= set(table)
    assert (out / "summary.md").read_text().startswith("# ISAAC summary")
    assert "Second judge" in (out / "summary.md").read_text()
    a, b, c = (tmp_path / "f" / f"{name}.png" for name in "abc")
    main(
        [
            "figures",
            "--summary",
            str(csv),
            "--config",
            to_json(ReportConfig(dpi=60)),
            "--safety-vs-distinct2",
            str(a),
            "--oracle-vs-model-safety",
            str(b),
            "--safety-vs-relevance",
            str(c),
        ]
    )
    for path in (a, b, c):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = a.read_bytes()
    figures(csv, a, b, c, dpi=60)
    assert a.read_bytes() == first  # deterministic bytes


def test_figures_read_only_summary_csv(tmp_path):
    """The figures need nothing but summary.csv: the run files may be gone."""
    s, p, t, j = write_sweep(tmp_path, MIXED)
    out = tmp_path / "out"
    main(summary_argv(s, p, t, j, out))
    for folder in ("scores", "targets", "judge", "judge2"):
        for path in sorted((tmp_path / folder).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    figures(out / "summary.csv", *(tmp_path / f"{x}.png" for x in "abc"), dpi=60)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty.csv"
    pd.read_csv(out / "summary.csv").iloc[:0].to_csv(empty, index=False)
    with pytest.raises(InputError, match="no runs to plot"):
        figures(empty, *(tmp_path / f"{x}.png" for x in "def"), dpi=60)


def test_figures_render_without_oracle_rates(tmp_path):
    """A corpus without labels (its judge from another corpus) has no oracle safe rate."""
    summarise(tmp_path, MIXED, oracle=dict.fromkeys(MIXED))
    csv = tmp_path / "out" / "summary.csv"
    assert pd.read_csv(csv)["oracle_safe_rate"].isna().all()
    figures(csv, *(tmp_path / f"{x}.png" for x in "abc"), dpi=60)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_second_judge_is_optional(tmp_path):
    s, p, t, j = write_sweep(
        tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE}
    )
    out = tmp_path / "out"
    # the summary rule passes an empty --second-judge= without a second judge
    main(summary_argv(s, p, t, j, out, second=False) + ["--second-judge="])
    assert "Second judge" not in (out / "summary.md").read_text()


def test_cli_per_prompt_list_must_match_scores(tmp_path, capsys):
    s, p, t, j = write_sweep(
        tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE}
    )
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        run(main, summary_argv(s, p[:1], t, j, out))
    assert exit_.value.code == 2
    assert "--scores and --per-prompt differ in length" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "cfg, problem",
    [
        pytest.param(
            {"resamples": 100, "seed": 0}, "--config: missing key(s) baselines", id="missing"
        ),
        pytest.param(
            {**schema_defaults("summary"), "dpi": 60}, "--config: unknown key(s) dpi", id="unknown"
        ),
        pytest.param({**schema_defaults("summary"), "seed": "0"}, "--config.seed", id="type"),
    ],
)
def test_cli_summary_config_must_have_exactly_its_keys(tmp_path, capsys, cfg, problem):
    s, p, t, j = write_sweep(
        tmp_path, {("raw", 1.0, 1, 0): RAW_UNSAFE, ("sft", 1.0, 1, 0): ALL_SAFE}
    )
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        run(main, summary_argv(s, p, t, j, out, cfg=json.dumps(cfg)))
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "cfg, problem",
    [
        ({}, "--config: missing key(s) dpi"),
        ({"dpi": 60, "width": 5}, "--config: unknown key(s) width"),
        ({"dpi": "60"}, "--config.dpi"),
    ],
)
def test_cli_figures_config_must_have_exactly_its_keys(tmp_path, capsys, cfg, problem):
    s, p, t, j = write_sweep(tmp_path, MIXED)
    main(summary_argv(s, p, t, j, tmp_path / "out"))
    csv = tmp_path / "out" / "summary.csv"
    a, b = tmp_path / "f" / "a.png", tmp_path / "f" / "b.png"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "figures",
                "--summary",
                str(csv),
                "--config",
                json.dumps(cfg),
                "--safety-vs-distinct2",
                str(a),
                "--oracle-vs-model-safety",
                str(b),
                "--safety-vs-relevance",
                str(tmp_path / "f" / "c.png"),
            ],
        )
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_schema_defaults_build_the_summary_settings():
    cfg = config()
    assert cfg.baselines == tuple(schema_defaults("summary")["baselines"])
    assert set(cfg.baselines) <= set(METHODS)
