"""The sampler: baselines, edge cases, output table and stats, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac import sample
from isaac.cli import run
from isaac.io import InputError
from isaac.plots import ReportConfig
from isaac.pools import pools_from_lists
from isaac.runs import (
    GLOBAL_POOL_METHODS,
    GROUP_METHODS,
    POOL_METHODS,
    SAMPLED_METHODS,
    Run,
    run_ids,
)
from isaac.sample import SampleConfig
from isaac.settings import to_json

# What made the groups of write_inputs, as assess records it beside them.
PROVENANCE = {"assessor": "exact", "pool": "neighbours", "encoder": "tfidf", "k": 15, "eps": None}


def sample_config(method, **overrides) -> SampleConfig:
    """The sample section the workflow hands `method`: the schema's top_k_groups,
    head_shortcut and group_size for the group methods, null otherwise."""
    group = method in GROUP_METHODS
    defaults = schema_defaults("sample")
    values = {
        "top_k_groups": defaults["top_k_groups"] if group else None,
        "head_shortcut": defaults["head_shortcut"] if group else None,
        "group_size": defaults["group_size"] if group else None,
        **overrides,
    }
    return settings(SampleConfig, **values)


def run_sample(
    method, train, tau=1.0, m=1, seed=0, pools=None, group_ids=None, weights=None, **config
):
    """sample.sample for one run, with the method's settings (and `config` overrides)."""
    return sample.sample(
        Run(method, tau, m, seed), train, sample_config(method, **config), pools, group_ids, weights
    )


def train_table(responses, safety_labels=None):
    n = len(responses)
    return pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(n)],
            "prompt": [f"p{i}" for i in range(n)],
            "response": responses,
            "label": safety_labels if safety_labels is not None else ["safe"] * n,
        }
    )


def flat(lists):
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])


def test_raw_copies_the_own_response_m_times():
    train = train_table(["a", "b", "c"], ["safe", "unsafe", None])
    table, stats = run_sample("raw", train, m=3)
    assert table["targets"].map(list).tolist() == [["a"] * 3, ["b"] * 3, ["c"] * 3]
    assert table["target_ids"].map(list).tolist() == [["t0"] * 3, ["t1"] * 3, ["t2"] * 3]
    assert stats["oracle_safe_rate"] == stats["original_safe_rate"] == 0.5
    assert stats["mean_si"] is None and stats["head_group_size"] is None


def test_sft_keeps_only_rows_labelled_safe():
    train = train_table(["a", "b", "c", "d"], ["safe", "unsafe", None, "safe"])
    table, stats = run_sample("sft", train)
    assert table["id"].tolist() == ["t0", "t3"]
    assert stats["oracle_safe_rate"] == 1.0 and stats["n"] == 2
    with pytest.raises(InputError, match="sft needs rows labelled 'safe'"):
        run_sample("sft", train_table(["a"], [None]))


def test_random_draws_uniform_pool_members_only():
    train = train_table([f"r{i}" for i in range(6)])
    lists = [[0, 1, 2], [1, 3], [2, 4, 5, 0]] * 2000
    pools = pools_from_lists(lists)
    group_ids = flat([[0, 0, 1], [0, 1], [0, 0, 0, 1]] * 2000)
    table, stats = run_sample("random", train, pools=pools, group_ids=group_ids)
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
    table, stats = run_sample("isaac", train, m=4, pools=pools, group_ids=np.array([0, 0, 0]))
    assert table["id"].tolist() == ["t0"]
    assert set(table["target_ids"][0]) <= {"t1", "t2", "t3"}
    assert not table["head_shortcut"][0]
    assert table["n_groups"][0] == 1 and table["si"][0] == 0.0


def test_pool_of_size_one_gives_the_own_response_in_both_modes():
    train = train_table(["only"])
    pools = pools_from_lists([[0]])
    for mode, shortcut in (("reference", True), ("strict", False)):
        table, _ = run_sample(
            "exp", train, m=2, head_shortcut=mode, pools=pools, group_ids=np.array([0])
        )
        assert list(table["targets"][0]) == ["only", "only"]
        assert table["head_shortcut"][0] == shortcut


def test_more_kept_groups_asked_than_exist_and_empty_strings():
    train = train_table(["", "", "b", "c"])
    pools = pools_from_lists([[2, 0, 1, 3]])
    table, stats = run_sample(
        "exp", train, tau=1e-3, m=3, top_k_groups=10, pools=pools, group_ids=np.array([0, 1, 1, 2])
    )
    # group 1 (the two empty responses) is the head: tau -> 0 always picks it
    assert list(table["targets"][0]) == ["", "", ""]
    assert set(table["target_ids"][0]) <= {"t0", "t1"}
    assert stats["mean_n_groups"] == 3.0


def test_head_shortcut_copies_the_own_response():
    train = train_table(["a", "a2", "b", "c"])
    pools = pools_from_lists([[0, 1, 2, 3]])
    table, stats = run_sample(
        "exp", train, tau=100.0, m=5, pools=pools, group_ids=np.array([0, 0, 1, 2])
    )
    assert table["head_shortcut"][0] and list(table["target_ids"][0]) == ["t0"] * 5
    assert stats["head_shortcut_share"] == 1.0


def test_strict_shortcut_needs_a_strict_head():
    train = train_table(["a", "a2", "b", "b2"])
    pools = pools_from_lists([[0, 1, 2, 3]])
    group_ids = np.array([0, 0, 1, 1])  # tie 2-2: the own group is first-seen
    ref, _ = run_sample("exp", train, pools=pools, group_ids=group_ids, head_shortcut="reference")
    strict, _ = run_sample("exp", train, pools=pools, group_ids=group_ids, head_shortcut="strict")
    assert ref["head_shortcut"][0] and not strict["head_shortcut"][0]


def test_weights_replace_counts_as_group_sizes():
    train = train_table(["a", "b", "c"])
    pools = pools_from_lists([[0, 1, 2]] * 500)
    group_ids = flat([[0, 1, 2]] * 500)
    weights = np.tile([0.1, 2.8, 0.1], 500)  # group 1 is the heavy one
    table, stats = run_sample("max", train, pools=pools, group_ids=group_ids, weights=weights)
    assert set(t[0] for t in table["target_ids"]) == {"t1"}
    assert stats["head_group_size"]["quantiles"]["median"] == pytest.approx(2.8)


def test_stats_are_null_for_an_unlabelled_corpus():
    train = train_table(["a", "b"], [None, None])
    _, stats = run_sample("raw", train)
    assert stats["original_safe_rate"] is None and stats["oracle_safe_rate"] is None


def test_oracle_rate_is_looked_up_by_id_not_by_string():
    # two rows with the same text but different safety labels: the target's id decides
    train = train_table(["same", "same"], ["unsafe", "safe"])
    pools = pools_from_lists([[0, 1]])
    _, stats = run_sample(
        "max", train, pools=pools, group_ids=np.array([0, 1]), head_shortcut="strict"
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
            "prompt_group": None,
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
    (tmp_path / "groups.json").write_text(json.dumps({**PROVENANCE, "pools": n}))
    return tmp_path / "corpus.parquet", tmp_path / "groups.parquet"


def cli_config(method) -> str:
    """--config as the workflow builds it for `method`."""
    return to_json(sample_config(method))


def sample_argv(corpus, groups, method, tau, out, stats, m=1, seed=0, config=None):
    """The arguments of one sample job; `config` defaults to the method's settings."""
    return [
        "--corpus",
        str(corpus),
        "--groups",
        str(groups),
        "--groups-stats",
        str(Path(groups).with_suffix(".json")) if groups else "",
        "--method",
        method,
        "--tau",
        str(tau),
        "--m",
        str(m),
        "--seed",
        str(seed),
        "--config",
        cli_config(method) if config is None else config,
        "--out",
        str(out),
        "--stats",
        str(stats),
    ]


def run_sample_cli(*args, **kwargs):
    sample.main(sample_argv(*args, **kwargs))


@pytest.mark.parametrize("method", [m for m in SAMPLED_METHODS if m not in GLOBAL_POOL_METHODS])
def test_cli_writes_targets_and_stats(tmp_path, method):
    corpus, groups = write_inputs(tmp_path)
    out, stats_path = tmp_path / "t.parquet", tmp_path / "t.json"
    run_sample_cli(corpus, groups, method, 0.5, out, stats_path, m=2, seed=3)
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
        "head_shortcut",
        "top_k_groups",
        "group_size",
        "assessor",
        "encoder",
        "eps",
        "pool",
        "k",
    ):
        assert key in stats, key
    assert stats["method"] == method and stats["m"] == 2 and stats["seed"] == 3
    assert (stats["head_shortcut"] == "strict") == (method in GROUP_METHODS)
    # the stats record the method's settings, and what made the groups for the pool methods
    config = json.loads(cli_config(method))
    assert {key: stats[key] for key in config} == config
    expected = PROVENANCE if method in POOL_METHODS else dict.fromkeys(PROVENANCE)
    assert {key: stats[key] for key in PROVENANCE} == expected
    # oracle_safe_rate: the share of the drawn targets whose train row is labelled safe,
    # recomputed from the targets table's ids (corpus safety labels: unsafe exactly when i % 7 == 6)
    target_ids = [t for tids in table["target_ids"] for t in tids]
    assert len(target_ids) == stats["n_targets"] == 2 * len(table)
    expected = float(np.mean(corpus_df.loc[target_ids, "label"].to_numpy() == "safe"))
    assert stats["oracle_safe_rate"] == pytest.approx(expected, abs=1e-12)
    if method == "sft":
        assert expected == 1.0  # sft keeps only the rows labelled safe


def test_cli_pool_method_without_groups_fails_cleanly(tmp_path):
    corpus, _ = write_inputs(tmp_path)
    out = tmp_path / "t.parquet"
    with pytest.raises(InputError, match="needs --groups and --groups-stats"):
        run_sample_cli(corpus, "", "isaac", 1.0, out, tmp_path / "t.json")
    assert not out.exists()


def test_group_method_without_its_settings_is_an_input_error():
    train = train_table(["a", "b"])
    pools, group_ids = pools_from_lists([[0, 1], [1, 0]]), np.array([0, 1, 0, 1])
    for missing in ("top_k_groups", "head_shortcut", "group_size"):
        with pytest.raises(
            InputError, match="isaac needs top_k_groups, head_shortcut and group_size"
        ):
            run_sample("isaac", train, pools=pools, group_ids=group_ids, **{missing: None})
    # random and the own-response methods read neither
    for method in ("raw", "sft", "random"):
        run_sample(method, train, pools=pools, group_ids=group_ids)


def test_a_method_refuses_settings_it_does_not_use():
    """The statistics record a method's settings, so a job sets only what the method uses:
    random's targets can never depend on the group settings."""
    train = train_table([f"r{i}" for i in range(5)])
    pools = pools_from_lists([[0, 1, 2, 3, 4], [1, 2, 3], [4, 0]] * 50)
    group_ids = np.tile([0, 0, 1, 2, 2, 0, 1, 1, 0, 1], 50)
    run_sample("random", train, m=3, pools=pools, group_ids=group_ids)
    with pytest.raises(InputError, match="method random does not use head_shortcut, top_k_groups"):
        run_sample(
            "random",
            train,
            m=3,
            pools=pools,
            group_ids=group_ids,
            top_k_groups=1,
            head_shortcut="reference",
        )
    with pytest.raises(InputError, match="method raw does not use group_size"):
        run_sample("raw", train, group_size="members")
    with pytest.raises(InputError, match="top_k_groups must be >= 1"):
        run_sample("isaac", train, pools=pools, group_ids=group_ids, top_k_groups=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "head_shortcut"}, "missing key(s) head_shortcut"),
        ({"drop": "group_size"}, "missing key(s) group_size"),
        ({"add": {"eps": 0.5}}, "unknown key(s) eps"),
        ({"add": {"figure_taus": [1.0]}}, "unknown key(s) figure_taus"),
        ({"add": {"top_k": 10}}, "unknown key(s) top_k"),
        ({"add": {"head_shortcut": "loose"}}, "head_shortcut one of strict, reference"),
    ],
)
def test_cli_bad_config_exits_2_naming_the_key_and_writes_nothing(
    tmp_path, capsys, change, message
):
    corpus, groups = write_inputs(tmp_path)
    config = json.loads(cli_config("isaac"))
    config.pop(change.get("drop"), None)
    config.update(change.get("add", {}))
    out, stats = tmp_path / "t.parquet", tmp_path / "t.json"
    with pytest.raises(SystemExit) as exit_info:
        run(
            sample.main,
            sample_argv(corpus, groups, "isaac", 1.0, out, stats, config=json.dumps(config)),
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not stats.exists()


def test_figures_are_drawn_from_groups_and_stats(tmp_path):
    from isaac import sample_figures

    corpus, groups = write_inputs(tmp_path)
    figure_config = to_json(settings(ReportConfig, "report", dpi=60))
    sample_figures.main(
        [
            "group-sizes",
            "--groups",
            str(groups),
            "--groups-stats",
            str(groups.with_suffix(".json")),
            "--config",
            figure_config,
            "--out",
            str(tmp_path / "g.png"),
        ]
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
    report_config = to_json(settings(ReportConfig, "report"))
    sample_figures.main(
        [
            "oracle-vs-tau",
            "--stats",
            *stats,
            "--config",
            report_config,
            "--out",
            str(tmp_path / "o.png"),
        ]
    )
    for name in ("g.png", "o.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"method": "isaac"}')
    with pytest.raises(InputError, match="bad.json: missing key 'tau'"):
        sample_figures.main(
            [
                "oracle-vs-tau",
                "--stats",
                str(bad),
                "--config",
                report_config,
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
    assert not (tmp_path / "x.png").exists()


def test_safe_rates_by_category_of_the_query_row():
    train = train_table(["a", "b", "c", "d"], ["safe", "unsafe", "unsafe", "safe"])
    train["category"] = ["x", "x", "y", None]
    _, stats = run_sample("sft", train)  # targets: rows 0 and 3, both safe
    assert stats["oracle_safe_rate_by_category"] == {"x": 1.0, "y": None}
    assert stats["original_safe_rate_by_category"] == {"x": 0.5, "y": 0.0}
    _, raw = run_sample("raw", train)
    assert raw["oracle_safe_rate_by_category"] == {"x": 0.5, "y": 0.0}
    _, plain = run_sample("raw", train_table(["a", "b"]))
    assert plain["oracle_safe_rate_by_category"] is None


def test_max_ignores_tau_so_a_sweep_runs_it_once():
    rng_train = train_table([f"r{i}" for i in range(6)])
    pools = pools_from_lists(
        [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 1, 4, 5], [0, 2, 3, 5], [1, 3, 4, 5]]
    )
    group_ids = flat(
        [[0, 0, 1, 2], [0, 0, 0, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 1, 1]]
    )
    cold, _ = run_sample("max", rng_train, tau=0.1, pools=pools, group_ids=group_ids)
    hot, _ = run_sample("max", rng_train, tau=10.0, pools=pools, group_ids=group_ids)
    pd.testing.assert_frame_equal(cold, hot)
    assert [r for r in run_ids(["max", "isaac"], [0.1, 1.0], [1], [0]) if r.startswith("max")] == [
        "max/tau1.0-m1-seed0"
    ]


def test_distinct_group_size_counts_near_copies_once():
    # one pool: group 0 = a response and its copy up to case and spacing, group 1 = two others
    train = train_table(["Not a troll.", "not a  troll. ", "fine", "sure thing", "ok"])
    pools = pools_from_lists([[0, 1, 2, 3, 4]])
    group_ids = np.array([0, 0, 1, 1, 2])
    by_members, _ = run_sample("max", train, pools=pools, group_ids=group_ids)
    by_distinct, stats = run_sample(
        "max", train, pools=pools, group_ids=group_ids, group_size="distinct"
    )
    assert by_members["target_ids"][0][0] in {"t0", "t1"}  # tie 2-2: the first-seen group
    assert by_distinct["target_ids"][0][0] in {"t2", "t3"}  # 1 distinct response against 2
    assert stats["group_size"] == "distinct"
    with pytest.raises(InputError, match="group_size one of members, distinct"):
        run_sample("max", train, pools=pools, group_ids=group_ids, group_size="copies")
    weights = sample.distinct_response_weights(pools, group_ids, train["response"], None)
    np.testing.assert_allclose(weights, [0.5, 0.5, 1, 1, 1])
    scaled = sample.distinct_response_weights(pools, group_ids, train["response"], np.full(5, 2.0))
    np.testing.assert_allclose(scaled, [1, 1, 2, 2, 2])


def global_inputs(n=40, seed=4):
    """Train rows whose responses fall into 6 groups (3 spellings each), and their groups in
    corpus order."""
    rng = np.random.default_rng(seed)
    group, spelling = rng.integers(0, 6, n), rng.integers(0, 3, n)
    train = train_table([f"answer {g}{'!' * s}" for g, s in zip(group, spelling)])
    return train, pd.factorize(pd.Series(group))[0]


@pytest.mark.parametrize("group_size", ["members", "distinct"])
def test_global_draws_as_isaac_from_the_whole_corpus_as_every_querys_pool(group_size):
    train, group_ids = global_inputs()
    n = len(train)
    one_pool = pools_from_lists([list(range(n))])
    shared, stats = run_sample(
        "global", train, 0.7, 3, 5, one_pool, group_ids, group_size=group_size
    )
    # the same pool materialised once per query: what global computes without the n copies
    copies = pools_from_lists([list(range(n))] * n, query=range(n))
    copied, _ = run_sample(
        "isaac", train, 0.7, 3, 5, copies, np.tile(group_ids, n), group_size=group_size
    )
    pd.testing.assert_frame_equal(shared, copied)
    assert shared["id"].tolist() == train["id"].tolist()
    if group_size == "members":  # the own response decides the shortcut, query by query
        assert 0 < stats["head_shortcut_share"] < 1
    assert stats["method"] == "global" and stats["top_k_groups"] == 10


def test_global_needs_a_table_of_one_pool():
    train, group_ids = global_inputs(n=6)
    two = pools_from_lists([list(range(6)), list(range(6))])
    with pytest.raises(InputError, match="global needs a groups table of one pool"):
        run_sample("global", train, pools=two, group_ids=np.tile(group_ids, 2))
    with pytest.raises(InputError, match="'constant' has no targets"):
        run_sample("constant", train)
