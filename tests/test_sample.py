"""The sampler: baselines, edge cases, output table and stats, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from isaac import sample
from isaac.assess import pools_from_lists
from isaac.io import InputError


def train_table(responses, labels=None):
    n = len(responses)
    return pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(n)],
            "prompt": [f"p{i}" for i in range(n)],
            "response": responses,
            "label": labels if labels is not None else ["safe"] * n,
        }
    )


def flat(lists):
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])


def test_raw_copies_the_own_response_m_times():
    train = train_table(["a", "b", "c"], ["safe", "unsafe", None])
    table, stats = sample.sample("raw", train, m=3)
    assert table["targets"].map(list).tolist() == [["a"] * 3, ["b"] * 3, ["c"] * 3]
    assert table["target_ids"].map(list).tolist() == [["t0"] * 3, ["t1"] * 3, ["t2"] * 3]
    assert stats["oracle_safe_rate"] == stats["original_safe_rate"] == 0.5
    assert stats["mean_si"] is None and stats["head_group_size"] is None


def test_sft_keeps_only_rows_labelled_safe():
    train = train_table(["a", "b", "c", "d"], ["safe", "unsafe", None, "safe"])
    table, stats = sample.sample("sft", train)
    assert table["id"].tolist() == ["t0", "t3"]
    assert stats["oracle_safe_rate"] == 1.0 and stats["n"] == 2
    with pytest.raises(InputError, match="sft needs rows labelled 'safe'"):
        sample.sample("sft", train_table(["a"], [None]))


def test_random_draws_uniform_pool_members_only():
    train = train_table([f"r{i}" for i in range(6)])
    lists = [[0, 1, 2], [1, 3], [2, 4, 5, 0]] * 2000
    pools = pools_from_lists(lists)
    labels = flat([[0, 0, 1], [0, 1], [0, 0, 0, 1]] * 2000)
    table, stats = sample.sample("random", train, pools=pools, labels=labels)
    counts = pd.Series([(q % 3, t[0]) for q, t in zip(range(6000), table["target_ids"])])
    counts = counts.value_counts()
    assert set(t for _, t in counts.index if _ == 1) == {"t1", "t3"}
    for (pool, _), count in counts.items():
        expected = 2000 / len(lists[pool])
        assert abs(count - expected) < 5 * np.sqrt(expected)
    assert not table["head_shortcut"].any()


def test_one_group_without_head_shortcut_and_missing_own_response():
    # the query t0 is absent from its own pool (duplicate prompts elsewhere); one group
    train = train_table(["own", "x", "x ", "X"])
    pools = pools_from_lists([[1, 2, 3]], query=[0])
    table, stats = sample.sample("isaac", train, m=4, pools=pools, labels=np.array([0, 0, 0]))
    assert table["id"].tolist() == ["t0"]
    assert set(table["target_ids"][0]) <= {"t1", "t2", "t3"}
    assert not table["head_shortcut"][0]
    assert table["n_groups"][0] == 1 and table["si"][0] == 0.0


def test_pool_of_size_one_gives_the_own_response_in_both_modes():
    train = train_table(["only"])
    pools = pools_from_lists([[0]])
    for mode, shortcut in (("reference", True), ("strict", False)):
        table, _ = sample.sample(
            "exp", train, m=2, head_shortcut=mode, pools=pools, labels=np.array([0])
        )
        assert list(table["targets"][0]) == ["only", "only"]
        assert table["head_shortcut"][0] == shortcut


def test_more_kept_groups_asked_than_exist_and_empty_strings():
    train = train_table(["", "", "b", "c"])
    pools = pools_from_lists([[2, 0, 1, 3]])
    table, stats = sample.sample(
        "exp", train, tau=1e-3, m=3, top_k=10, pools=pools, labels=np.array([0, 1, 1, 2])
    )
    # group 1 (the two empty responses) is the head: tau -> 0 always picks it
    assert list(table["targets"][0]) == ["", "", ""]
    assert set(table["target_ids"][0]) <= {"t0", "t1"}
    assert stats["mean_n_groups"] == 3.0


def test_head_shortcut_copies_the_own_response():
    train = train_table(["a", "a2", "b", "c"])
    pools = pools_from_lists([[0, 1, 2, 3]])
    table, stats = sample.sample(
        "exp", train, tau=100.0, m=5, pools=pools, labels=np.array([0, 0, 1, 2])
    )
    assert table["head_shortcut"][0] and list(table["target_ids"][0]) == ["t0"] * 5
    assert stats["head_shortcut_share"] == 1.0


def test_strict_shortcut_needs_a_strict_head():
    train = train_table(["a", "a2", "b", "b2"])
    pools = pools_from_lists([[0, 1, 2, 3]])
    labels = np.array([0, 0, 1, 1])  # tie 2-2: the own group is first-seen
    ref, _ = sample.sample("exp", train, pools=pools, labels=labels, head_shortcut="reference")
    strict, _ = sample.sample("exp", train, pools=pools, labels=labels, head_shortcut="strict")
    assert ref["head_shortcut"][0] and not strict["head_shortcut"][0]


def test_weights_replace_counts_as_group_sizes():
    train = train_table(["a", "b", "c"])
    pools = pools_from_lists([[0, 1, 2]] * 500)
    labels = flat([[0, 1, 2]] * 500)
    weights = np.tile([0.1, 2.8, 0.1], 500)  # group 1 is the heavy one
    table, stats = sample.sample("max", train, pools=pools, labels=labels, weights=weights)
    assert set(t[0] for t in table["target_ids"]) == {"t1"}
    assert stats["head_group_size"]["quantiles"]["median"] == pytest.approx(2.8)


def test_stats_are_null_for_an_unlabelled_corpus():
    train = train_table(["a", "b"], [None, None])
    _, stats = sample.sample("raw", train)
    assert stats["original_safe_rate"] is None and stats["oracle_safe_rate"] is None


def test_oracle_rate_is_looked_up_by_id_not_by_string():
    # two rows with the same text but different labels: the target's id decides
    train = train_table(["same", "same"], ["unsafe", "safe"])
    pools = pools_from_lists([[0, 1]])
    _, stats = sample.sample(
        "max", train, pools=pools, labels=np.array([0, 1]), head_shortcut="strict"
    )
    # 1-1 tie: max keeps the first-seen group (t0, unsafe)
    assert stats["oracle_safe_rate"] == 0.0


def write_inputs(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    ids = [f"c{i}" for i in range(n)]
    corpus = pd.DataFrame(
        {
            "id": ids + ["v0"],
            "split": ["train"] * n + ["val"],
            "prompt": [f"p{i % 10}" for i in range(n)] + ["pv"],
            "response": [f"r{i % 7}" for i in range(n)] + ["rv"],
            "label": [["safe", "unsafe"][i % 7 == 6] for i in range(n)] + ["safe"],
            "category": None,
            "group": None,
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet", index=False)
    pools, groups = [], []
    for i in range(n):
        members = [i, *rng.choice([j for j in range(n) if j != i], 14, replace=False)]
        pools.append([ids[j] for j in members])
        codes = pd.factorize(pd.Series([j % 7 for j in members]))[0]
        groups.append(codes.tolist())
    pd.DataFrame({"id": ids, "pool_ids": pools, "group": groups}).to_parquet(
        tmp_path / "groups.parquet", index=False
    )
    return tmp_path / "corpus.parquet", tmp_path / "groups.parquet"


def run_sample_cli(corpus, groups, method, tau, out, stats, *extra):
    sample.main(
        ["--corpus", str(corpus), "--groups", str(groups), "--method", method,
         "--tau", str(tau), "--out", str(out), "--stats", str(stats), *extra]
    )


@pytest.mark.parametrize("method", sample.METHODS)
def test_cli_writes_targets_and_stats(tmp_path, method):
    corpus, groups = write_inputs(tmp_path)
    out, stats_path = tmp_path / "t.parquet", tmp_path / "t.json"
    run_sample_cli(
        corpus, groups, method, 0.5, out, stats_path,
        "--m", "2", "--seed", "3", "--assessor", "exact", "--encoder", "tfidf", "--eps", "",
        "--pool", "neighbours", "--k", "15",
    )
    table = pd.read_parquet(out)
    assert {"id", "prompt", "response", "targets", "target_ids", "head_shortcut"} <= set(table)
    assert all(len(t) == 2 for t in table["targets"])
    corpus_df = pd.read_parquet(corpus).set_index("id")
    for tids, texts in zip(table["target_ids"], table["targets"]):
        assert corpus_df.loc[list(tids), "response"].tolist() == list(texts)
        assert "v0" not in tids  # targets come from the train split only
    stats = json.loads(stats_path.read_text())
    for key in (
        "n",
        "original_safe_rate",
        "oracle_safe_rate",
        "head_shortcut_share",
        "mean_si",
        "mean_n_groups",
        "head_group_size",
        "method",
        "tau",
        "m",
        "seed",
        "head_shortcut_mode",
        "assessor",
        "encoder",
        "eps",
    ):
        assert key in stats, key
    assert stats["method"] == method and stats["m"] == 2 and stats["seed"] == 3
    assert (stats["assessor"] == "exact") == (method in sample.POOL_METHODS)
    assert (stats["head_shortcut_mode"] == "strict") == (method in sample.GROUP_METHODS)
    assert 0.0 <= stats["oracle_safe_rate"] <= 1.0


def test_cli_pool_method_without_groups_fails_cleanly(tmp_path):
    corpus, _ = write_inputs(tmp_path)
    out = tmp_path / "t.parquet"
    with pytest.raises(InputError, match="needs --groups"):
        sample.main(
            [
                "--corpus",
                str(corpus),
                "--groups",
                "",
                "--method",
                "isaac",
                "--out",
                str(out),
                "--stats",
                str(tmp_path / "t.json"),
            ]
        )
    assert not out.exists()


def test_figures_are_drawn_from_groups_and_stats(tmp_path):
    from isaac import sample_figures

    corpus, groups = write_inputs(tmp_path)
    sample_figures.main(
        ["group-sizes", "--groups", str(groups), "--out", str(tmp_path / "g.png"), "--dpi", "60"]
    )
    stats = []
    for method, tau in [
        ("raw", 1.0),
        ("random", 1.0),
        ("isaac", 0.5),
        ("isaac", 2.0),
        ("exp", 2.0),
    ]:
        path = tmp_path / f"{method}-{tau}.json"
        run_sample_cli(corpus, groups, method, tau, tmp_path / "t.parquet", path)
        stats.append(str(path))
    sample_figures.main(["oracle-vs-tau", "--stats", *stats, "--out", str(tmp_path / "o.png")])
    for name in ("g.png", "o.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"method": "isaac"}')
    with pytest.raises(InputError, match="bad.json: missing key 'tau'"):
        sample_figures.main(
            ["oracle-vs-tau", "--stats", str(bad), "--out", str(tmp_path / "x.png")]
        )
    assert not (tmp_path / "x.png").exists()
