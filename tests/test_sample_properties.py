"""What must hold for the group distribution and the sampler (docs/sampling.md, "Methods")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from conftest import settings
from isaac import sample
from isaac.io import write_parquet
from isaac.pools import pools_from_lists
from isaac.runs import GROUP_METHODS, Run
from isaac.sample import SampleConfig

SHARPENED = ("isaac", "isaac_paper", "exp")


def sample_config(method="isaac", **overrides) -> SampleConfig:
    """The sample section the workflow hands `method`: the schema's top_k_groups, head_shortcut
    and group_size for a group method (null for random)."""
    values = {}
    if method not in GROUP_METHODS:
        values |= {"top_k_groups": None, "head_shortcut": None, "group_size": None}
    return settings(SampleConfig, "sample", **{**values, **overrides})


# K, the number of kept groups: the workflow's default, used by the sampler and the formulas
K = sample_config().top_k_groups


def distribution(sizes, method, tau):
    return sample.distribution(sizes, method, tau, K)


def run_sample(method, train, tau=1.0, m=1, seed=0, pools=None, group_ids=None, **config):
    """sample.sample for one run, with the method's settings (and `config` overrides)."""
    config = sample_config(method, **config)
    return sample.sample(Run(method, tau, m, seed), train, config, pools, group_ids)


# --------------------------------------------------------------------------- worked values


@pytest.mark.parametrize(
    "method, tau, expected",
    [
        ("isaac", 1.0, [0.9994, 0.0006, 0.0000]),
        ("exp", 1.0, [0.9465, 0.0471, 0.0064]),
        ("isaac", 10.0, [0.5680, 0.2688, 0.1632]),
        ("exp", 10.0, [0.4260, 0.3156, 0.2584]),
        ("isaac_paper", 10.0, [0.4899, 0.2972, 0.2129]),
    ],
)
def test_worked_values(method, tau, expected):
    p = distribution([6, 3, 1], method, tau)
    assert np.round(p, 4).tolist() == expected


def test_worked_sharpen_indicator_and_max():
    si = sample.sharpen_indicator(np.array([[6.0, 3.0, 1.0]]), np.array([3]))
    assert si[0] == pytest.approx(0.6)
    assert distribution([6, 3, 1], "max", 1.0).tolist() == [1.0, 0.0, 0.0]


def test_log_sum_exp_handles_huge_sizes():
    p = distribution([100_000, 99_999, 5], "exp", 1.0)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-1)))


# --------------------------------------------------------------------------- analytic properties


def random_sizes(rng, n_cases=300):
    for _ in range(n_cases):
        k = int(rng.integers(2, 12))
        yield np.sort(rng.integers(1, 40, size=k))[::-1].astype(float)


def comonotone_safety(sizes, rng):
    """Bigger groups are at least as safe: a_c non-increasing along descending sizes,
    equal sizes get equal safety."""
    levels = np.sort(rng.uniform(0, 1, size=len(sizes)))[::-1]
    a = levels.copy()
    for i in range(1, len(sizes)):
        if sizes[i] == sizes[i - 1]:
            a[i] = a[i - 1]
    return a


def temperature(method, sizes, tau, top_k=K):
    kept = sizes[:top_k]
    si = sample.sharpen_indicator(kept[None, :], np.array([len(kept)]))[0]
    return {"isaac": (1 + 1e-3 - si) * tau, "isaac_paper": max(si, 1e-3) * tau, "exp": tau}[method]


@pytest.mark.parametrize("method", SHARPENED)
def test_safety_never_rises_with_tau_and_has_the_right_limits(method):
    rng = np.random.default_rng(0)
    taus = np.geomspace(1e-3, 1e4, 40)
    for sizes in random_sizes(rng):
        a = comonotone_safety(sizes, rng)
        kept_a = a[:K]
        safe = [distribution(sizes, method, tau) @ kept_a for tau in taus]
        assert np.all(np.diff(safe) <= 1e-12), (sizes, a)
        # T -> 0: the largest group's safety (or the mean over tied largest groups)
        tied = sizes[:K] == sizes[0]
        assert safe[0] == pytest.approx(kept_a[tied].mean(), abs=1e-6)
        # T -> infinity: the plain mean over kept groups
        assert distribution(sizes, method, 1e12) @ kept_a == pytest.approx(kept_a.mean(), abs=1e-6)
        assert distribution(sizes, "max", 1.0) @ kept_a >= safe[-1] - 1e-12


@pytest.mark.parametrize("method", SHARPENED)
def test_at_least_as_safe_as_random_for_tau_up_to_one(method):
    rng = np.random.default_rng(1)
    for sizes in random_sizes(rng):
        a = comonotone_safety(sizes, rng)
        random_safe = sizes @ a / sizes.sum()  # uniform member over all groups, not just top K
        for tau in (0.05, 0.3, 0.7, 1.0):
            p = distribution(sizes, method, tau)
            assert p @ a[:K] >= random_safe - 1e-12, (sizes, a, tau)


@pytest.mark.parametrize("method", SHARPENED)
def test_p1_lower_bound(method):
    rng = np.random.default_rng(2)
    for sizes in random_sizes(rng):
        for tau in (0.1, 1.0, 5.0, 50.0):
            t = temperature(method, sizes, tau)
            kept = sizes[:K]
            bound = 1 / (1 + (len(kept) - 1) * np.exp(-(kept[0] - kept[1]) / t))
            assert distribution(sizes, method, tau)[0] >= bound - 1e-12


# --------------------------------------------------------------------------- Monte Carlo


def identical_pools(n_queries, group_ids, own_pos=None):
    """n_queries copies of one pool; the query row is pool member `own_pos` (None: absent)."""
    n = len(group_ids)
    train = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(n)] + ["query"],
            "prompt": "p",
            "response": [f"r{i}" for i in range(n)] + ["q"],
            "label": "safe",
        }
    )
    query = n if own_pos is None else own_pos
    pools = pools_from_lists([list(range(n))] * n_queries, query=[query] * n_queries)
    return train, pools, np.tile(np.asarray(group_ids), n_queries)


@pytest.mark.parametrize("method, tau", [("exp", 3.0), ("isaac", 5.0), ("isaac_paper", 2.0)])
def test_draw_frequencies_match_p_within_a_binomial_99_interval(method, tau):
    group_ids = [0, 0, 1, 0, 1, 2, 0, 0, 1, 0]  # sizes 6, 3, 1 in first-appearance order
    n_queries, m = 4000, 5
    train, pools, flat = identical_pools(n_queries, group_ids)  # query absent: no shortcut
    table, _ = run_sample(method, train, tau=tau, m=m, seed=11, pools=pools, group_ids=flat)
    drawn = np.array([int(t[1:]) for ids in table["target_ids"] for t in ids])
    n = len(drawn)
    p = distribution([6, 3, 1], method, tau)
    group_of = np.asarray(group_ids)[drawn]
    for g, pg in enumerate(p):
        lo, hi = binom.interval(0.99, n, pg)
        assert lo <= np.sum(group_of == g) <= hi, (g, pg, np.sum(group_of == g))
    # members uniformly within their group
    sizes = np.bincount(group_ids)
    for member, g in enumerate(group_ids):
        lo, hi = binom.interval(0.99, n, p[g] / sizes[g])
        assert lo <= np.sum(drawn == member) <= hi, member


def test_m_targets_are_independent_and_m_does_not_change_the_mean():
    group_ids = [0, 0, 1, 1, 2]  # sizes 2, 2, 1; member 0,1 safe, others unsafe
    train, pools, flat = identical_pools(6000, group_ids)
    train.loc[2:4, "label"] = "unsafe"
    p = distribution([2, 2, 1], "exp", 2.0)
    one, s1 = run_sample("exp", train, tau=2.0, m=1, pools=pools, group_ids=flat)
    five, s5 = run_sample("exp", train, tau=2.0, m=5, pools=pools, group_ids=flat)
    # common random numbers: target 1 of m=5 equals the only target of m=1
    assert [t[0] for t in five["target_ids"]] == [t[0] for t in one["target_ids"]]
    safe = np.array([[t in ("m0", "m1") for t in ids] for ids in five["target_ids"]])
    for rate, n in ((s1["oracle_safe_rate"], 6000), (s5["oracle_safe_rate"], 30000)):
        lo, hi = binom.interval(0.99, n, p[0])
        assert lo <= rate * n <= hi
    # number of safe targets per query ~ Binomial(5, p_safe)
    per_query = np.bincount(safe.sum(axis=1), minlength=6)
    expected = binom.pmf(np.arange(6), 5, p[0]) * 6000
    assert np.all(np.abs(per_query - expected) < 5 * np.sqrt(expected) + 5)


def test_sampled_safety_beats_random_with_comonotone_labels():
    # 3 pool shapes; the head group is safe, the tail unsafe
    rng = np.random.default_rng(5)
    n_pool = 30
    group_ids = np.sort(rng.integers(0, 6, size=n_pool))
    sizes = np.bincount(group_ids)
    order = np.argsort(-sizes, kind="stable")
    safe_groups = set(order[:2].tolist())
    train, pools, flat = identical_pools(3000, group_ids.tolist())
    train["label"] = ["safe" if g in safe_groups else "unsafe" for g in group_ids] + ["safe"]
    _, rand = run_sample("random", train, pools=pools, group_ids=flat)
    for method in ("isaac", "isaac_paper", "exp", "max"):
        _, st = run_sample(method, train, tau=1.0, pools=pools, group_ids=flat)
        assert st["oracle_safe_rate"] > rand["oracle_safe_rate"] + 0.05, method


def test_no_target_from_outside_the_top_k_groups():
    rng = np.random.default_rng(6)
    n_train = 200
    train = pd.DataFrame(
        {"id": [f"t{i}" for i in range(n_train)], "prompt": "p", "response": "r", "label": "safe"}
    )
    lists, label_lists, allowed = [], [], []
    for q in range(300):
        size = int(rng.integers(5, 60))
        members = [
            q % n_train,
            *rng.choice(np.delete(np.arange(n_train), q % n_train), size - 1, replace=False),
        ]
        raw = rng.integers(0, int(rng.integers(1, 15)), size=size)
        codes = pd.factorize(pd.Series(raw))[0]  # canonical: first appearance
        counts = np.bincount(codes)
        top = sorted(range(len(counts)), key=lambda g: (-counts[g], g))[:3]
        lists.append(members)
        label_lists.append(codes)
        allowed.append({f"t{members[j]}" for j in range(size) if codes[j] in top})
    pools = pools_from_lists(lists)
    flat = np.concatenate(label_lists)
    for method in ("isaac", "isaac_paper", "exp", "max"):
        table, _ = run_sample(
            method,
            train,
            tau=1000.0,
            m=8,
            top_k_groups=3,
            pools=pools,
            group_ids=flat,
            head_shortcut="strict",
        )
        for ids, ok, shortcut, own in zip(
            table["target_ids"], allowed, table["head_shortcut"], table["id"]
        ):
            assert set(ids) <= ok, method
            if shortcut:
                assert set(ids) == {own}


def test_same_seed_gives_identical_parquet_bytes(tmp_path):
    train, pools, flat = identical_pools(500, [0, 1, 1, 2, 0, 3, 1])
    paths = []
    for i, seed in enumerate((7, 7, 8)):
        table, _ = run_sample("isaac", train, tau=3.0, m=3, seed=seed, pools=pools, group_ids=flat)
        paths.append(tmp_path / f"{i}.parquet")
        write_parquet(table, paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_head_shortcut_modes_on_all_singleton_pools():
    n = K + 2
    train, pools, flat = identical_pools(400, list(range(n)), own_pos=0)  # every group size 1
    ref, ref_stats = run_sample(
        "isaac", train, m=2, pools=pools, group_ids=flat, head_shortcut="reference"
    )
    strict, strict_stats = run_sample(
        "isaac", train, m=2, pools=pools, group_ids=flat, head_shortcut="strict"
    )
    # reference: the first-seen singleton (the own response) "wins" the tie: copied back
    assert ref["head_shortcut"].all() and ref_stats["head_shortcut_share"] == 1.0
    assert {t for ids in ref["target_ids"] for t in ids} == {"m0"}
    # strict: no head, so targets are drawn uniformly over the K kept singletons
    assert not strict["head_shortcut"].any() and strict_stats["head_shortcut_share"] == 0.0
    drawn = {t for ids in strict["target_ids"] for t in ids}
    assert drawn == {f"m{i}" for i in range(K)}
