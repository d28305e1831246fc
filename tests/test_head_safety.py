"""Many responses per prompt: head vs rest of each prompt's pool, judged, with an interval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac import assess, head_safety
from isaac.bootstrap import SummaryConfig
from isaac.head_safety import distinct_pools, head_rest_table, summarise
from isaac.io import InputError
from isaac.judge import fit_judge, save_judge
from isaac.pools import prompt_pools
from isaac.sample import run_generators, sample_pools
from isaac.settings import to_json

CONFIG = settings(SummaryConfig, "summary", resamples=500, seed=0, baselines=None)


def test_each_prompt_once_head_is_the_largest_group_ties_to_the_first_seen():
    groups = pd.Series(["a"] * 5 + ["b"] * 4)
    pools = prompt_pools(groups)  # one pool per row, the same set for every row of a prompt
    #        prompt a: groups 0 0 0 1 2      prompt b: groups 0 0 1 1 (tie: first seen)
    ids_by_pool = {"a": [0, 0, 0, 1, 2], "b": [0, 0, 1, 1]}
    group_ids = np.concatenate([ids_by_pool[g] for g in groups])
    unsafe = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    table = head_rest_table(pools, group_ids, unsafe)
    assert table["n_responses"].tolist() == [5, 4] and table["head_size"].tolist() == [3, 2]
    # prompt a: head = rows 0,1,2 (1 of 3 unsafe), rest = rows 3,4 (both unsafe)
    assert table["head_unsafe"].iloc[0] == pytest.approx(1 / 3)
    assert table["rest_unsafe"].iloc[0] == 1.0
    assert table["difference"].iloc[0] == pytest.approx(2 / 3)
    # prompt b: head = rows 5,6 (one unsafe), rest = rows 7,8 (safe): the head is less safe
    assert table["difference"].iloc[1] == pytest.approx(-0.5)


def test_with_weights_the_head_is_the_group_of_largest_summed_weight_as_the_sampler_has_it():
    pools = prompt_pools(pd.Series(["a"] * 5 + ["b"] * 2))
    #        prompt a: groups 0 0 0 1 2 (the rows in order in every pool), prompt b: 0 1
    group_ids = np.concatenate([np.tile([0, 0, 0, 1, 2], 5), [0, 1, 0, 1]])
    unsafe = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert head_rest_table(pools, group_ids, unsafe)["head_size"].tolist() == [3, 1]
    # group 1 of prompt a (one response, weight 3) outweighs group 0 (three of 0.5)
    weights = np.concatenate([np.tile([0.5, 0.5, 0.5, 3.0, 1.0], 5), [1.0] * 4])
    table = head_rest_table(pools, group_ids, unsafe, weights)
    assert table["head_size"].tolist() == [1, 1] and table["head_unsafe"].tolist() == [0.0, 0.0]
    assert table["rest_unsafe"].iloc[0] == pytest.approx(3 / 4)
    top = sample_pools(
        group_ids[None, :5],
        np.ones((1, 5), bool),
        np.array([0]),
        "max",
        1.0,
        1,
        run_generators(0, "max"),
        top_k=1,
        head_shortcut="reference",
        weights=weights[None, :5],
    )
    assert group_ids[top["positions"][0, 0]] == 1  # the sampler's head is the same group
    # a tie in summed weight keeps the group seen first
    weights[:25] = np.tile([1.0, 1.0, 1.0, 3.0, 1.0], 5)
    assert head_rest_table(pools, group_ids, unsafe, weights)["head_size"].tolist() == [3, 1]


@pytest.mark.parametrize("prompts", [["a"] * 5, ["a", "a", "b", "b", "c", "c"]])
def test_prompts_whose_pools_have_one_length_count_once(prompts):
    pools = prompt_pools(pd.Series(prompts))
    group_ids = np.zeros(len(pools.index), dtype=np.int64)
    table = head_rest_table(pools, group_ids, np.zeros(len(prompts), dtype=bool))
    first_rows = pd.Series(prompts).drop_duplicates().index.tolist()
    assert distinct_pools(pools).tolist() == first_rows
    assert table["query"].tolist() == first_rows
    assert table["n_responses"].tolist() == table["head_size"].tolist()


def test_summary_compares_prompts_with_a_head_and_a_rest_with_a_seeded_interval():
    table = pd.DataFrame(
        {
            "query": range(5),
            "n_responses": [4, 4, 4, 1, 3],
            "head_size": [2, 3, 2, 1, 3],
            "head_unsafe": [0.0, 0.5, 0.5, 1.0, 0.0],
            "rest_unsafe": [0.5, 1.0, 0.0, np.nan, np.nan],
        }
    )
    table["difference"] = table["rest_unsafe"] - table["head_unsafe"]
    out = summarise(table, CONFIG)
    assert out["n_pools"] == 5 and out["n_compared"] == 3
    assert out["difference"] == pytest.approx((0.5 + 0.5 - 0.5) / 3)
    assert out["difference_lo"] <= out["difference"] <= out["difference_hi"]
    assert out["share_head_safer"] == pytest.approx(2 / 3)
    assert summarise(table, CONFIG) == out  # seeded
    with pytest.raises(InputError, match="no pool has a head of two"):
        summarise(table.iloc[3:], CONFIG)


def test_cli_writes_the_summary_and_the_per_prompt_table(tmp_path):
    safe = ["that sounds great", "i am happy for you", "good luck with that"]
    unsafe = ["you are an idiot", "shut up loser", "nobody likes you"]
    rows = []
    for p, responses in enumerate(
        [[safe[0]] * 3 + [unsafe[0], unsafe[1]], [unsafe[2]] * 2 + [safe[1]]]
    ):
        rows += [
            {
                "id": f"p{p}-{j}",
                "split": "train",
                "prompt": f"prompt {p}",
                "response": r,
                "label": None,
                "category": None,
                "prompt_group": f"g{p}",
            }
            for j, r in enumerate(responses)
        ]
    corpus = tmp_path / "corpus.parquet"
    pd.DataFrame(rows).to_parquet(corpus, index=False)
    groups = tmp_path / "exact.parquet"
    assess_config = to_json(
        settings(
            assess.AssessConfig,
            "assess",
            assessor="exact",
            pool="prompt",
            eps=None,
            fuzzy_threshold=None,
        )
    )
    assess.main(
        [
            "--corpus",
            str(corpus),
            "--config",
            assess_config,
            "--out",
            str(groups),
            "--stats",
            str(tmp_path / "exact.json"),
        ]
    )
    judge = fit_judge(["c"] * 6, safe + unsafe, [0] * 3 + [1] * 3, "tfidf-lr")
    save_judge(judge, tmp_path / "judge")
    out, table = tmp_path / "head_safety.json", tmp_path / "head_safety.parquet"
    head_safety.main(
        [
            "--corpus",
            str(corpus),
            "--groups",
            str(groups),
            "--judge",
            str(tmp_path / "judge"),
            "--config",
            to_json(CONFIG),
            "--out",
            str(out),
            "--table",
            str(table),
        ]
    )
    summary = json.loads(out.read_text())
    per_prompt = pd.read_parquet(table)
    assert per_prompt["prompt"].tolist() == ["prompt 0", "prompt 1"]
    assert per_prompt["head_size"].tolist() == [3, 2]
    assert summary["n_compared"] == 2 and summary["judge"] == "tfidf-lr"
    # the judge's own verdicts, split by hand: rows 0-2 and 5-6 are the heads
    frame = pd.DataFrame(rows)
    v = judge.unsafe(frame["prompt"].tolist(), frame["response"].tolist()).astype(float)
    expected = [v[3:5].mean() - v[0:3].mean(), v[7:8].mean() - v[5:7].mean()]
    assert per_prompt["difference"].tolist() == pytest.approx(expected)
    assert summary["difference"] == pytest.approx(np.mean(expected))


def test_settings_come_from_the_summary_section():
    defaults = schema_defaults("summary")
    assert settings(SummaryConfig, "summary", baselines=None) == SummaryConfig(
        resamples=defaults["resamples"], seed=defaults["seed"], baselines=None
    )
