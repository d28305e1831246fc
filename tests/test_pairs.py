"""Preference pairs: the head-and-tail rule, the oracle's labels, agreement, table and CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from isaac import pairs
from isaac.cli import run
from isaac.io import InputError
from isaac.pairs_summary import main as summary_main
from isaac.pools import groups_table, pools_from_lists
from isaac.runs import PAIR_METHODS, Run
from test_sample import flat, run_sample, sample_config, train_table

LABELS = ["safe", "unsafe", None]


def run_pairs(method, train, pools, group_ids, tau=1.0, m=1, seed=0, **config):
    """pairs.pairs for one run with the settings the workflow hands the method."""
    return pairs.pairs(
        Run(method, tau, m, seed),
        train,
        sample_config(PAIR_METHODS[method] or method, **config),
        pools,
        group_ids,
    )


def random_pools(seed: int, n: int = 60, width: int = 12):
    """A train table of n rows (labels at random) and a pool per row: the row itself first,
    then random others, in a random number of groups."""
    rng = np.random.default_rng(seed)
    train = train_table([f"r{i}" for i in range(n)], list(rng.choice(LABELS, n)))
    lists, ids = [], []
    for query in range(n):
        others = rng.choice(np.delete(np.arange(n), query), rng.integers(0, width), replace=False)
        members = [query, *others]
        raw = rng.integers(0, rng.integers(1, 6), len(members))
        lists.append(members)
        ids.append(pd.factorize(raw)[0])  # canonical: numbered by first appearance
    return train, pools_from_lists(lists), flat(ids), lists, ids


@pytest.mark.parametrize("seed", range(5))
def test_chosen_and_rejected_come_from_different_groups_and_rejected_from_the_tail(seed):
    train, pools, group_ids, lists, ids = random_pools(seed)
    table, stats = run_pairs("isaac_dpo", train, pools, group_ids, m=3, seed=seed, top_k_groups=2)
    by_id = {f"t{i}": i for i in range(len(train))}
    assert len(table) == stats["n_with_pair"] > 0
    for row in table.itertuples():
        query = by_id[row.id]
        group = dict(zip(lists[query], ids[query]))
        sizes = np.bincount(ids[query])
        kept = set(np.argsort(-sizes, kind="stable")[:2])  # the two kept groups
        tail = [g for g in range(len(sizes)) if g not in kept]
        smallest = min(sizes[tail])
        for chosen, rejected in zip(row.chosen_ids, row.rejected_ids):
            assert group[by_id[chosen]] in kept  # drawn as isaac draws: from the head
            assert group[by_id[rejected]] not in kept
            if not row.rejected_own:
                assert sizes[group[by_id[rejected]]] == smallest
    no_tail = sum(len(set(i)) <= 2 for i in ids)
    assert stats["n_without_pair"] == no_tail == stats["n"] - len(table)


def test_chosen_are_the_isaac_targets_of_the_same_run():
    train, pools, group_ids, _, _ = random_pools(7, n=80)
    table, _ = run_pairs("isaac_dpo", train, pools, group_ids, tau=0.5, m=4, seed=3, top_k_groups=2)
    targets, _ = run_sample(
        "isaac", train, tau=0.5, m=4, seed=3, pools=pools, group_ids=group_ids, top_k_groups=2
    )
    chosen = dict(zip(table["id"], table["chosen_ids"].map(list)))
    isaac = dict(zip(targets["id"], targets["target_ids"].map(list)))
    assert chosen and all(chosen[i] == isaac[i] for i in chosen)


def test_the_own_response_is_rejected_when_its_group_is_not_kept():
    # pool of t0: t0 alone, then two groups of two; K = 2 keeps those two
    train = train_table(["own", "a", "a", "b", "b"])
    pools = pools_from_lists([[0, 1, 2, 3, 4], [1, 2, 3]])
    table, stats = run_pairs(
        "isaac_dpo", train, pools, np.array([0, 1, 1, 2, 2, 0, 0, 1]), m=2, top_k_groups=2
    )
    assert table["id"].tolist() == ["t0"] and table["rejected_own"][0]
    assert list(table["rejected_ids"][0]) == ["t0", "t0"]
    assert set(table["chosen_ids"][0]) <= {"t1", "t2", "t3", "t4"}
    assert stats["n_without_pair"] == 1 and stats["rejected_own_share"] == 1.0


def test_a_pool_of_one_group_has_no_pair_and_a_corpus_without_pairs_is_refused():
    train = train_table(["a", "a", "b"])
    pools = pools_from_lists([[0, 1, 2], [1, 0]])
    table, stats = run_pairs("isaac_dpo", train, pools, np.array([0, 0, 1, 0, 0]), top_k_groups=1)
    assert table["id"].tolist() == ["t0"] and stats["n_without_pair"] == 1
    with pytest.raises(InputError, match="2 train examples and none has a pair"):
        run_pairs("isaac_dpo", train, pools, np.array([0, 0, 0, 0, 0]), top_k_groups=1)


def test_oracle_pairs_a_response_labelled_safe_with_one_labelled_unsafe():
    train, pools, group_ids, lists, _ = random_pools(11)
    table, stats = run_pairs("oracle_dpo", train, pools, group_ids, m=3)
    label = dict(zip(train["id"], train["label"]))
    assert all(label[c] == "safe" for ids in table["chosen_ids"] for c in ids)
    assert all(label[r] == "unsafe" for ids in table["rejected_ids"] for r in ids)
    both = sum({"safe", "unsafe"} <= {train["label"][i] for i in members} for members in lists)
    assert stats["n_with_pair"] == both and stats["agreement"]["agree"] == 1.0
    assert stats["agreement"]["reverse"] == 0.0 and stats["top_k_groups"] is None
    with pytest.raises(InputError, match="none has a pair: no pool holds both"):
        run_pairs(
            "oracle_dpo",
            train_table(["a", "b"], ["safe", None]),
            pools_from_lists([[0, 1]]),
            [0, 1],
        )


def test_agreement_counts_labelled_pairs_only():
    first = np.array(["safe", "safe", "unsafe", None, "safe"], dtype=object)
    second = np.array(["unsafe", "safe", "safe", "unsafe", "unsafe"], dtype=object)
    assert pairs.agreement(first, second) == {"agree": 0.5, "reverse": 0.25, "labelled_pairs": 4}
    assert pairs.agreement(first[3:4], second[3:4])["agree"] is None


def test_random_pairs_agree_as_often_as_they_reverse_and_isaac_pairs_more():
    # pools whose large group is safe and whose singletons are unsafe: the assumption holds
    n = 400
    labels = ["safe"] * 300 + ["unsafe"] * 100
    train = train_table([f"r{i}" for i in range(n)], labels)
    rng = np.random.default_rng(0)
    lists, ids = [], []
    for query in range(n):
        head = rng.choice(300, 8, replace=False)
        tail = 300 + rng.choice(100, 4, replace=False)
        members = [query, *[h for h in head if h != query], *[t for t in tail if t != query]]
        lists.append(members)
        ids.append(pd.factorize(np.array([0 if i < 300 else 1 + i for i in members]))[0])
    _, stats = run_pairs(
        "isaac_dpo", train, pools_from_lists(lists), flat(ids), m=2, top_k_groups=1
    )
    assert stats["agreement"]["agree"] > 0.9
    random = stats["random_agreement"]
    assert abs(random["agree"] - random["reverse"]) < 0.1


def test_same_seed_same_bytes_and_the_cli_refuses_unknown_methods(tmp_path):
    train, pools, group_ids, lists, ids = random_pools(3)
    train.assign(split="train").to_parquet(tmp_path / "corpus.parquet")
    groups_table(train["id"].to_numpy(), pools, group_ids).to_parquet(tmp_path / "groups.parquet")
    provenance = {
        "assessor": "exact",
        "pool": "neighbours",
        "encoder": "tfidf",
        "k": 12,
        "eps": None,
    }
    (tmp_path / "groups.json").write_text(json.dumps(provenance))
    config = json.dumps({"top_k_groups": 2, "head_shortcut": "strict", "group_size": "members"})

    def cli(out, method="isaac_dpo", **kwargs):
        args = ["--corpus", tmp_path / "corpus.parquet", "--groups", tmp_path / "groups.parquet"]
        args += ["--groups-stats", tmp_path / "groups.json", "--method", method, "--tau", "1"]
        args += [
            "--m",
            "2",
            "--seed",
            "5",
            "--config",
            config,
            "--out",
            tmp_path / f"{out}.parquet",
        ]
        return run(
            pairs.main, [*map(str, args), "--stats", str(tmp_path / f"{out}.json")], **kwargs
        )

    cli("a")
    cli("b")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    stats = json.loads((tmp_path / "a.json").read_text())
    assert stats["k"] == 12 and stats["n_pairs"] == 2 * stats["n_with_pair"]
    summary_main([str(tmp_path / "a.json"), "--csv", str(tmp_path / "pairs.csv")])
    table = pd.read_csv(tmp_path / "pairs.csv", dtype=str, keep_default_na=False)
    assert table["method"].tolist() == ["isaac_dpo"] and table["seed"].tolist() == ["5"]
    with pytest.raises(SystemExit):
        cli("c", method="isaac")
    assert not (tmp_path / "c.parquet").exists()
