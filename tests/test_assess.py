"""Assessors: the vectorised DBSCAN equals sklearn per pool; fuzzy, exact, likelihood; CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from conftest import schema_defaults, settings
from isaac import assess, sample
from isaac.assess import AssessConfig
from isaac.cli import run
from isaac.embed import save_embeddings
from isaac.io import InputError
from isaac.pools import Pools, global_pool, pools_from_lists, prompt_pools, read_groups
from isaac.sample import SampleConfig
from isaac.settings import to_json


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_pools(rng, n, n_pools, max_len):
    lists = []
    for q in range(n_pools):
        size = int(rng.integers(1, max_len + 1))
        others = rng.choice(np.delete(np.arange(n), q % n), size=size - 1, replace=False)
        lists.append([q % n, *others.tolist()])
    return pools_from_lists(lists)


@pytest.mark.parametrize("eps", [0.2, 0.5, 0.8, 1.1, 1.6])
def test_vectorised_dbscan_equals_sklearn_dbscan_per_pool(eps):
    rng = np.random.default_rng(int(eps * 10))
    # clustered data so that every eps gives a mix of groups and singletons
    centres = rng.normal(size=(6, 5))
    v = unit(centres[rng.integers(0, 6, size=200)] + 0.35 * rng.normal(size=(200, 5)))
    pools = random_pools(rng, 200, 120, 40)  # ragged pools
    slow = assess.dbscan_groups_reference(v, pools, eps)
    fast = assess.dbscan_groups(v, pools, eps, batch_size=17)  # induced subgraphs of one eps-graph
    assert np.array_equal(fast, slow)
    per_batch = assess.dbscan_groups(v, pools, eps, batch_size=17, max_edges=0)
    assert np.array_equal(per_batch, slow)
    n_groups = np.maximum.reduceat(fast, pools.offsets[:-1]) + 1
    assert 1 <= n_groups.min() and n_groups.max() <= pools.lengths.max()


def test_small_pools_in_a_large_corpus_skip_the_global_eps_graph(monkeypatch):
    rng = np.random.default_rng(9)
    v = unit(rng.normal(size=(400, 4)))
    pools = random_pools(rng, 400, 400, 5)  # n^2 / 2 pairs >> 4 * sum(L^2)
    expected = assess.dbscan_groups_reference(v, pools, 0.9)

    def refuse(*args, **kwargs):
        raise AssertionError("the global eps-graph was built")

    monkeypatch.setattr(assess, "_eps_graph", refuse)
    assert np.array_equal(assess.dbscan_groups(v, pools, 0.9), expected)


def test_eps_graph_decides_pairs_at_the_radius_in_float64():
    # orthogonal unit vectors are sqrt(2) apart: float32 products cannot tell which side of
    # the radius they are, so these pairs take the float64 recheck; the per-batch float64
    # distances (max_edges=0) are the reference
    v = np.eye(6, dtype=np.float32)[[0, 1, 2, 0, 3, 4, 5, 5]]
    pools = pools_from_lists([[0, 1, 2, 3, 4, 5, 6, 7], [4, 5], [7, 6, 0]])
    for eps in (np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0.0), 0.5):
        fast = assess.dbscan_groups(v, pools, eps)
        assert np.array_equal(fast, assess.dbscan_groups(v, pools, eps, max_edges=0)), eps
    assert assess.dbscan_groups(v, pools, np.sqrt(2.0))[:8].tolist() == [0] * 8  # 2 <= eps^2
    below = assess.dbscan_groups(v, pools, np.nextafter(np.sqrt(2.0), 0.0))
    assert below[:8].tolist() == [0, 1, 2, 0, 3, 4, 5, 5]  # only the duplicates link


def test_dbscan_labels_are_canonical_first_appearance_and_handle_zero_vectors():
    v = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [0.99, 0.14]], dtype=np.float32)
    pools = pools_from_lists([[1, 0, 2, 4, 3], [3], [4, 2]])
    group_ids = assess.dbscan_groups(v, pools, 0.3)
    assert np.array_equal(group_ids, assess.dbscan_groups(v, pools, 0.3, max_edges=0))
    # pool 0: 1 alone (group 0), 0/2/4 together (group 1), the zero vector alone (group 2)
    assert group_ids.tolist() == [0, 1, 1, 1, 2, 0, 0, 0]
    assert np.array_equal(group_ids, assess.dbscan_groups_reference(v, pools, 0.3))


@pytest.mark.parametrize("eps", [0.15, 0.3, 0.4])
def test_one_pool_of_every_row_equals_sklearn_dbscan_on_the_whole_set(eps):
    """Method global's pool: its eps-graph merged block by block (1,100 rows: 3 blocks)."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 6))
    v = unit(centres[rng.integers(0, 8, size=1100)] + 0.4 * rng.normal(size=(1100, 6)))
    pool = global_pool(len(v))
    expected = assess.dbscan_groups_reference(v, pool, eps)
    assert np.array_equal(assess.dbscan_groups(v, pool, eps), expected)
    assert 1 < expected.max() + 1 < len(v)  # neither one group nor all singletons


def test_streamed_components_equal_the_components_of_the_whole_graph():
    rng = np.random.default_rng(5)
    n = 300
    rows, cols = rng.integers(0, n, 250), rng.integers(0, n, 250)
    whole = connected_components(
        coo_matrix((np.ones(250), (rows, cols)), shape=(n, n)), directed=False
    )[1]
    blocks = [(rows[i : i + 40], cols[i : i + 40]) for i in range(0, 250, 40)]
    streamed = assess._streamed_components(n, iter(blocks))
    zeros = np.zeros(n, dtype=np.int64)
    assert np.array_equal(
        assess.canonical_group_ids(streamed, zeros, 1), assess.canonical_group_ids(whole, zeros, 1)
    )


def test_one_pool_of_fuzzy_groups_equals_the_batched_path():
    responses = ["yes sure", "Yes, sure!", "no way", "no way at all", "maybe", "", "", "later"] * 3
    one = global_pool(len(responses))
    two = pools_from_lists([list(range(len(responses)))] * 2)  # the batched, pairwise path
    batched = assess.fuzzy_groups(responses, two, threshold=80)[: len(responses)]
    assert np.array_equal(assess.fuzzy_groups(responses, one, threshold=80), batched)
    assert batched[:8].tolist() == [0, 0, 1, 1, 2, 3, 3, 4]


def test_canonical_group_ids_renumber_each_pool_by_first_appearance():
    group_ids = np.array([7, 3, 7, 9, 5, 5, 2])
    rows = np.array([0, 0, 0, 0, 1, 1, 1])
    assert assess.canonical_group_ids(group_ids, rows, 2).tolist() == [0, 1, 0, 2, 0, 0, 1]


def test_fuzzy_groups_link_similar_strings_by_single_linkage():
    responses = [
        "I am fine thank you",
        "thank you, I am fine!",  # same tokens -> 100
        "no idea what you mean",
        "I am fine thank you so much my friend",  # token_set_ratio 100 with 0 (subset)
        "",
        "",
        "something else entirely here",
    ]
    pools = pools_from_lists([[0, 1, 2, 3, 4, 5, 6], [2, 6], [4, 5, 0]])
    group_ids = assess.fuzzy_groups(responses, pools, threshold=90)
    assert group_ids[:7].tolist() == [0, 0, 1, 0, 2, 2, 3]
    assert group_ids[7:9].tolist() == [0, 1]
    assert group_ids[9:].tolist() == [0, 0, 1]  # equal strings (even empty ones) are one group
    # the per-pool path (many distinct strings) gives the same groups
    per_pool = assess.fuzzy_groups(responses, pools, threshold=90, max_global=0)
    assert np.array_equal(group_ids, per_pool)


def test_fuzzy_threshold_controls_linkage():
    responses = ["the cat sat on the mat", "the cat sat on a hat", "dogs bark loudly"]
    pools = pools_from_lists([[0, 1, 2]])
    assert assess.fuzzy_groups(responses, pools, threshold=70).tolist() == [0, 0, 1]
    assert assess.fuzzy_groups(responses, pools, threshold=99).tolist() == [0, 1, 2]


def test_exact_groups_use_the_normalised_string():
    responses = ["Hello  there", "hello there", "HELLO THERE ", "bye", ""]
    pools = pools_from_lists([[3, 0, 1, 2, 4], [4, 4 - 4]])
    assert assess.exact_groups(responses, pools).tolist() == [0, 1, 1, 1, 2, 0, 1]


def test_likelihood_weights_sum_to_the_pool_size_and_follow_the_likelihood():
    loglik = np.array([-1.0, -2.0, -1.0, -5.0])
    pools = pools_from_lists([[0, 1, 2, 3], [3]])
    w = assess.likelihood_weights(loglik, pools)
    assert np.isclose(w[:4].sum(), 4.0) and np.isclose(w[4], 1.0)
    assert w[0] == w[2] > w[1] > w[3] > 0
    np.testing.assert_allclose(w[1] / w[0], np.exp(-1.0))


def test_prompt_pools_put_the_query_first_then_its_group_in_corpus_order():
    pools = prompt_pools(pd.Series(["a", None, "a", "b", "a", np.nan, "b"]))
    lists = [pools.index[a:b].tolist() for a, b in zip(pools.offsets[:-1], pools.offsets[1:])]
    assert lists == [[0, 2, 4], [1], [2, 0, 4], [3, 6], [4, 0, 2], [5], [6, 3]]
    assert pools.query.tolist() == list(range(7))


def assess_config(assessor, eps=None, **overrides) -> str:
    """--config as the workflow's assess section: the schema's defaults, eps (or its rule when
    eps is null) only for dbscan and the fuzzy threshold only for fuzzy (null otherwise)."""
    defaults = schema_defaults("assess")
    threshold = defaults["fuzzy_threshold"] if assessor == "fuzzy" else None
    rule = defaults["eps_quantile"] if assessor == "dbscan" and eps is None else None
    values = {
        "assessor": assessor,
        "eps": eps,
        "eps_quantile": rule,
        "fuzzy_threshold": threshold,
        **overrides,
    }
    return to_json(settings(AssessConfig, "assess", **values))


def test_assess_runs_the_configured_assessor_with_its_settings():
    responses = ["the cat sat on the mat", "the cat sat on a hat", "dogs bark", "Dogs  bark "]
    train = pd.DataFrame({"response": responses})
    pools = pools_from_lists([[0, 1, 2, 3], [2, 3, 0]])
    v = unit(np.eye(3)[[0, 0, 1, 2]] + 1e-3)
    loglik = np.array([-1.0, -2.0, -1.5, -3.0])

    def config(assessor, eps=None, fuzzy_threshold=None):
        return settings(
            AssessConfig,
            "assess",
            assessor=assessor,
            eps=eps,
            eps_quantile=None,
            fuzzy_threshold=fuzzy_threshold,
        )

    group_ids, weights = assess.assess(config("dbscan", eps=0.5), train, pools, vectors=v)
    assert np.array_equal(group_ids, assess.dbscan_groups(v, pools, 0.5)) and weights is None
    fuzzy = {}
    for threshold in (70, 99):  # the config's threshold, not a default
        group_ids, weights = assess.assess(config("fuzzy", fuzzy_threshold=threshold), train, pools)
        assert np.array_equal(group_ids, assess.fuzzy_groups(responses, pools, threshold=threshold))
        fuzzy[threshold] = group_ids.tolist()
        assert weights is None
    assert fuzzy[70][:4] == [0, 0, 1, 1] and fuzzy[99][:4] == [0, 1, 2, 2]
    group_ids, weights = assess.assess(config("exact"), train, pools)
    assert group_ids.tolist() == [0, 1, 2, 2, 0, 0, 1] and weights is None
    group_ids, weights = assess.assess(config("likelihood"), train, pools, loglik=loglik)
    assert group_ids.tolist() == [0, 1, 2, 2, 0, 0, 1]
    np.testing.assert_allclose(weights, assess.likelihood_weights(loglik, pools))


@pytest.mark.parametrize(
    "assessor, setting", [("dbscan", "assess.eps"), ("fuzzy", "assess.fuzzy_threshold")]
)
def test_assess_without_the_assessors_setting_is_an_input_error(assessor, setting):
    train = pd.DataFrame({"response": ["a", "b"]})
    pools = pools_from_lists([[0, 1]])
    config = settings(
        AssessConfig, "assess", assessor=assessor, eps=None, eps_quantile=None, fuzzy_threshold=None
    )
    with pytest.raises(InputError, match=f"assessor {assessor} needs {setting}"):
        assess.assess(config, train, pools, vectors=unit(np.eye(2)))


def write_corpus(tmp_path, responses, groups=None):
    n = len(responses)
    df = pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(n)],
            "split": ["train"] * n,
            "prompt": [f"prompt {i % 3}" for i in range(n)],
            "response": responses,
            "label": ["safe"] * n,
            "category": [None] * n,
            "prompt_group": groups if groups is not None else [None] * n,
        }
    )
    df.to_parquet(tmp_path / "corpus.parquet", index=False)
    return tmp_path / "corpus.parquet", df["id"].to_numpy()


def write_neighbours(tmp_path, ids, lists):
    df = pd.DataFrame(
        {
            "id": ids,
            "neighbour_ids": [[ids[j] for j in x] for x in lists],
            "similarities": [[1.0] * len(x) for x in lists],
        }
    )
    df.to_parquet(tmp_path / "nb.parquet", index=False)
    return tmp_path / "nb.parquet"


@pytest.mark.parametrize("assessor", ["dbscan", "fuzzy", "exact", "likelihood"])
def test_cli_writes_groups_for_every_assessor(tmp_path, assessor):
    responses = ["yes sure", "yes sure", "no way", "Yes  sure", "maybe later"]
    corpus, ids = write_corpus(tmp_path, responses)
    lists = [[i, *[j for j in range(5) if j != i][:3]] for i in range(5)]
    nb = write_neighbours(tmp_path, ids, lists)
    v = unit(np.eye(5)[[0, 0, 1, 0, 2]] + 1e-3)
    save_embeddings(tmp_path / "e.npz", ids, v, v)
    pd.DataFrame(
        {"id": ids, "n_tokens": 3, "loglik": [-1.0, -1.0, -3.0, -1.5, -2.0], "response_freq": 1}
    ).to_parquet(tmp_path / "ll.parquet")
    out = tmp_path / "groups" / f"{assessor}.parquet"
    overrides = {"dbscan": {"eps": 0.5}, "fuzzy": {"fuzzy_threshold": 90}}.get(assessor, {})
    assess.main(
        [
            "--corpus",
            str(corpus),
            "--neighbours",
            str(nb),
            "--embeddings",
            str(tmp_path / "e.npz"),
            "--likelihood",
            str(tmp_path / "ll.parquet"),
            "--config",
            assess_config(assessor, **overrides),
            "--out",
            str(out),
            "--stats",
            str(out.with_suffix(".json")),
        ]
    )
    table = pd.read_parquet(out)
    stats = json.loads(out.with_suffix(".json").read_text())
    assert stats["eps"] == (0.5 if assessor == "dbscan" else None) and stats["pools"] == 5
    # what made the groups: the sample stage records it with every target drawn from them
    assert {key: stats[key] for key in ("assessor", "pool", "encoder", "k")} == {
        "assessor": assessor,
        "pool": "neighbours",
        "encoder": "e",
        "k": 4,
    }
    assert table["id"].tolist() == ids.tolist()
    assert [list(x) for x in table["pool_ids"]] == [[ids[j] for j in x] for x in lists]
    # pool 0 = responses 0,1,2,3: "yes sure" x3 (one normalised form) and "no way"
    assert list(table["group"][0]) == [0, 0, 1, 0]
    assert ("weight" in table.columns) == (assessor == "likelihood")


def test_cli_group_pool_mode(tmp_path):
    corpus, ids = write_corpus(tmp_path, ["a", "b", "a", "c"], groups=["g", "g", "g", None])
    out = tmp_path / "g.parquet"
    assess.main(
        [
            "--corpus",
            str(corpus),
            "--config",
            assess_config("exact", pool="prompt"),
            "--out",
            str(out),
            "--stats",
            str(tmp_path / "g.json"),
        ]
    )
    table = pd.read_parquet(out)
    assert [list(x) for x in table["pool_ids"]] == [
        ["x0", "x1", "x2"],
        ["x1", "x0", "x2"],
        ["x2", "x0", "x1"],
        ["x3"],
    ]
    assert [list(x) for x in table["group"]] == [[0, 1, 0], [0, 1, 1], [0, 0, 1], [0]]


def test_cli_rejects_a_neighbour_that_is_not_a_train_row(tmp_path):
    corpus, ids = write_corpus(tmp_path, ["a", "b"])
    nb = tmp_path / "nb.parquet"
    pd.DataFrame({"id": ids, "neighbour_ids": [["x0", "ghost"], ["x1", "x0"]]}).to_parquet(nb)
    out = tmp_path / "g.parquet"
    with pytest.raises(InputError, match=r"nb\.parquet.*'ghost'"):
        assess.main(
            [
                "--corpus",
                str(corpus),
                "--neighbours",
                str(nb),
                "--config",
                assess_config("exact"),
                "--out",
                str(out),
                "--stats",
                str(tmp_path / "g.json"),
            ]
        )
    assert not out.exists()


def cli_inputs(tmp_path):
    """A corpus with its neighbours and embeddings: every input a dbscan job reads."""
    corpus, ids = write_corpus(tmp_path, ["yes", "yes", "no"])
    nb = write_neighbours(tmp_path, ids, [[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    v = unit(np.eye(3)[[0, 0, 1]] + 1e-3)
    embeddings = tmp_path / "e.npz"
    save_embeddings(embeddings, ids, v, v)
    return ["--corpus", str(corpus), "--neighbours", str(nb), "--embeddings", str(embeddings)]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "pool"}, "missing key(s) pool"),
        ({"drop": "eps"}, "missing key(s) eps"),
        ({"add": {"eps_defaults": {"minilm": 0.75}}}, "unknown key(s) eps_defaults"),
        ({"add": {"k": 150}}, "unknown key(s) k"),
    ],
)
def test_cli_config_with_a_missing_or_unknown_key_exits_2_naming_it(
    tmp_path, capsys, change, message
):
    config = json.loads(assess_config("dbscan", eps=0.5))
    config.pop(change.get("drop"), None)
    config.update(change.get("add", {}))
    out = tmp_path / "g.parquet"
    argv = [
        *cli_inputs(tmp_path),
        "--config",
        json.dumps(config),
        "--out",
        str(out),
        "--stats",
        str(tmp_path / "g.json"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        run(assess.main, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_dbscan_with_a_null_eps_exits_2_and_writes_nothing(tmp_path, capsys):
    out, stats = tmp_path / "g.parquet", tmp_path / "g.json"

    def argv(config):
        return [*cli_inputs(tmp_path), "--config", config, "--out", str(out), "--stats", str(stats)]

    with pytest.raises(SystemExit) as exit_info:
        run(assess.main, argv(assess_config("dbscan", eps=None, eps_quantile=None)))
    assert exit_info.value.code == 2
    assert "assessor dbscan needs assess.eps" in capsys.readouterr().err
    assert not out.exists() and not stats.exists()
    # the same config with an eps writes the groups
    run(assess.main, argv(assess_config("dbscan", eps=0.5)))
    assert [list(x) for x in pd.read_parquet(out)["group"]] == [[0, 0, 1], [0, 0, 1], [0, 1, 1]]


def nearest_distinct_distances(vectors, pools, max_pools=assess.EPS_RULE_POOLS, seed=0):
    """The eps rule's distances in float64 for every member, pool by pool: the oracle whose
    quantile eps_from_quantile's float32 screening must give bit for bit."""
    out = []
    for q in assess.eps_rule_pools(len(pools), max_pools, seed):
        members = vectors[pools.index[pools.offsets[q] : pools.offsets[q + 1]]].astype(np.float64)
        sq = np.einsum("ij,ij->i", members, members)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * members @ members.T, 0.0)
        d2[d2 <= 1e-12] = np.inf  # itself and exact duplicates
        nearest = d2.min(axis=1)
        out.append(np.sqrt(nearest[np.isfinite(nearest)]))
    return np.concatenate(out) if out else np.zeros(0)


def test_eps_rule_is_the_quantile_of_nearest_distinct_distances():
    # pool 0: two duplicates at a, one point at distance 0.1, one at distance 1.0 from a
    a = np.array([1.0, 0.0])
    v = np.stack([a, a, a + [0, 0.1], a + [0, 1.0]])
    pools = pools_from_lists([[0, 1, 2, 3]])
    distances = nearest_distinct_distances(v, pools)
    np.testing.assert_allclose(np.sort(distances), [0.1, 0.1, 0.1, 0.9])  # duplicates skipped
    assert assess.eps_from_quantile(v, pools, 0.5) == np.quantile(distances, 0.5)
    assert assess.eps_from_quantile(v, pools, 0.5) == pytest.approx(0.1)
    # scale-free: the same geometry at ten times the scale gives ten times the radius
    assert assess.eps_from_quantile(10 * v, pools, 0.5) == pytest.approx(1.0)
    config = settings(
        AssessConfig, "assess", assessor="dbscan", eps=None, eps_quantile=0.5, fuzzy_threshold=None
    )
    group_ids, _ = assess.assess(config, pd.DataFrame({"response": list("abcd")}), pools, vectors=v)
    assert group_ids.tolist() == [0, 0, 0, 1]  # eps 0.1 links the near point, not the far one
    with pytest.raises(InputError, match="no pool holds two distinct responses"):
        assess.eps_from_quantile(np.stack([a, a]), pools_from_lists([[0, 1]]), 0.5)
    with pytest.raises(InputError, match="exactly one"):
        assess.dbscan_eps(replace(config, eps=0.3), v, pools)


def test_eps_rule_reads_a_bounded_seeded_sample_of_pools():
    few = assess.eps_rule_pools(50, max_pools=10)
    assert len(set(few)) == 10 and np.all(np.diff(few) > 0) and few.max() < 50
    np.testing.assert_array_equal(few, assess.eps_rule_pools(50, max_pools=10))
    np.testing.assert_array_equal(assess.eps_rule_pools(50), np.arange(50))  # all 50 pools


def eps_rule_data(kind):
    """Vectors and pools for the eps rule: clustered unit vectors with exact duplicates and
    near duplicates on either side of the duplicate threshold (1e-12), the same at a large
    scale, or lattice points, where many members share their nearest distance."""
    rng = np.random.default_rng(11)
    if kind == "lattice":
        v = rng.integers(0, 6, size=(300, 3)).astype(np.float32) / 8
    else:
        centres = rng.normal(size=(5, 16))
        v = unit(centres[rng.integers(0, 5, 300)] + 0.3 * rng.normal(size=(300, 16)))
        v[200:260] = v[:60]  # exact duplicates
        shift = rng.choice([1e-8, 1e-7, 1e-6, 1e-3], size=(40, 1)) * rng.normal(size=(40, 16))
        v[260:300] = v[60:100] + shift
        v = (v * (30.0 if kind == "large" else 1.0)).astype(np.float32)
    return v, random_pools(rng, 300, 400, 60)


@pytest.mark.parametrize("kind", ["unit", "large", "lattice"])
def test_eps_rule_equals_the_float64_quantile_bit_for_bit(kind):
    v, pools = eps_rule_data(kind)
    for q in (0.1, 0.3, 0.5, 0.7, 0.9):
        expected = float(np.quantile(nearest_distinct_distances(v, pools), q))
        assert assess.eps_from_quantile(v, pools, q) == expected, q


@pytest.mark.parametrize("threshold", [0, 3, 10**9])  # every member of high degree, some, none
def test_eps_graph_leaves_pairs_at_the_radius_to_the_pools_own_distances(monkeypatch, threshold):
    """The quantile rule's eps is a pair distance, so pairs sit at the radius: the graph path
    must give the per-batch path's groups bit for bit, also for a pool holding a row twice and
    in batches of a few pools."""
    v, pools = eps_rule_data("unit")
    pools = pools_from_lists(
        [pools.index[pools.offsets[q] : pools.offsets[q + 1]] for q in range(len(pools))]
        + [[5, 7, 5, 200, 9]]
    )
    eps = assess.eps_from_quantile(v, pools, 0.5)
    x = v.astype(np.float64)
    (linked, _), (ties, _), tie_d2 = assess._eps_graph(
        x, np.einsum("ij,ij->i", x, x), eps**2, 10**9
    )
    assert len(ties) > 0 and 2 * (len(linked) + np.sum(tie_d2 <= eps**2)) <= len(pools.index)
    expected = assess.dbscan_groups(v, pools, eps, batch_size=16, max_edges=0)
    monkeypatch.setattr(assess, "_dense_degree", lambda *args: threshold)
    monkeypatch.setattr(assess, "LOOKUPS", 2_000)
    dense = assess.dbscan_groups(v, pools, eps, batch_size=16, max_edges=1)
    assert np.array_equal(dense, expected)
    sparse = assess.dbscan_groups(v, pools, eps, batch_size=16)
    assert np.array_equal(sparse, pairwise_float64_groups(pairwise_float64(v, pools), pools, eps))
    assert expected[-5:].tolist()[0] == expected[-5:].tolist()[2]  # the row twice links


def test_eps_rule_decides_pairs_at_the_duplicate_threshold_by_the_pools_own_distances():
    # two vectors about 1e-6 apart: their squared distance sits at the duplicate threshold
    # (1e-12), where only float64 rounding tells a duplicate from a distinct neighbour
    a = np.float32(2.0**-10)
    step = np.spacing(a)
    base = unit(np.random.default_rng(4).normal(size=(40, 4)))
    pools = pools_from_lists([[40, 41], [41, 40, 3], [0, 1, 2, 3], [4, 5, 40, 41], [6, 7, 8, 9]])
    near = int(1e-6 / step)
    for k in range(near - 3, near + 4):
        pair = np.zeros((2, 4), dtype=np.float32)
        pair[:, 0] = a
        pair[1, 0] += k * step
        v = np.vstack([base, pair])
        for q in (0.2, 0.5, 0.8):
            expected = float(np.quantile(nearest_distinct_distances(v, pools), q))
            assert assess.eps_from_quantile(v, pools, q) == expected, (k, q)


def pairwise_float64(vectors, pools):
    """Each pool's float64 squared distances pair by pair (einsum): the radius test of a sparse
    eps-graph."""
    x = np.asarray(vectors, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    out = []
    for q in range(len(pools)):
        m = pools.index[pools.offsets[q] : pools.offsets[q + 1]]
        a, b = np.meshgrid(m, m, indexing="ij")
        out.append(sq[a] + sq[b] - 2.0 * np.einsum("ijk,ijk->ij", x[a], x[b]))
    return out


def pairwise_float64_groups(distances, pools, eps):
    """Each pool's components of "its pairwise_float64 squared distance <= eps^2"."""
    ids = [connected_components(coo_matrix(d2 <= eps**2), directed=False)[1] for d2 in distances]
    return assess.canonical_group_ids(np.concatenate(ids), pools.rows(), len(pools))


def test_pairs_at_the_radius_follow_the_arithmetic_the_graph_size_picks():
    """eps^2 set to the per-batch path's own squared distance of a pair (and to its float
    neighbours), for pairs whose float64 estimates round differently: a sparse eps-graph links
    them by the pair's own float64 distance, a dense one (max_edges below its links) exactly
    as the per-batch path does."""
    rng = np.random.default_rng(8)
    v = unit(rng.normal(size=(120, 64)))
    pools = random_pools(rng, 120, 600, 30)  # more members than twice the pairs: sparse
    x = v.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    members, valid = pools.padded(0, 16)
    d2 = assess._pool_sq_distances(x, sq, members)
    b, i, j = np.nonzero(valid[:, :, None] & valid[:, None, :] & (d2 > 0.5))
    estimate = sq[members[b, i]] + sq[members[b, j]]
    estimate -= 2.0 * np.einsum("ij,ij->i", x[members[b, i]], x[members[b, j]])
    differ = np.flatnonzero(estimate != d2[b, i, j])
    assert len(differ) >= 8
    distances = pairwise_float64(v, pools)
    for target in d2[b, i, j][rng.choice(differ, size=8, replace=False)]:
        for eps2 in (np.nextafter(target, 0.0), target, np.nextafter(target, 4.0)):
            eps = np.sqrt(eps2)
            per_batch = assess.dbscan_groups(v, pools, eps, batch_size=16, max_edges=0)
            dense = assess.dbscan_groups(v, pools, eps, batch_size=16, max_edges=1)
            assert np.array_equal(dense, per_batch)
            sparse = assess.dbscan_groups(v, pools, eps, batch_size=16)
            assert np.array_equal(sparse, pairwise_float64_groups(distances, pools, eps))


def test_dense_degree_is_a_power_of_two_less_one_within_the_dense_node_budget(monkeypatch):
    rng = np.random.default_rng(2)
    degree = rng.integers(0, 300, size=500)
    pools = random_pools(rng, 500, 200, 60)
    args = (degree[pools.index], pools.rows(), degree, len(pools))
    threshold = assess._dense_degree(*args)
    assert threshold + 1 in 2 ** np.arange(12)
    monkeypatch.setattr(assess, "MAX_DENSE_NODES", 10)
    assert (degree > assess._dense_degree(*args)).sum() <= 10


def test_read_groups_checks_lengths(tmp_path):
    path = tmp_path / "g.parquet"
    pd.DataFrame({"id": ["a"], "pool_ids": [["a", "b"]], "group": [[0]]}).to_parquet(path)
    with pytest.raises(InputError, match="differ in length"):
        read_groups(path, np.array(["a", "b"]))


def test_pools_padding_round_trips():
    pools = Pools(np.array([4, 5, 6, 7, 8, 9]), np.array([0, 1, 4, 6]), np.array([4, 5, 8]))
    members, valid = pools.padded(0, 3)
    assert members[valid].tolist() == [4, 5, 6, 7, 8, 9]
    assert valid.sum(axis=1).tolist() == [1, 3, 2]


@pytest.mark.parametrize("with_weights", [False, True])
def test_groups_written_through_arrow_equal_the_pandas_table_and_read_back(tmp_path, with_weights):
    from isaac.io import write_parquet
    from isaac.pools import groups_table, write_groups

    rng = np.random.default_rng(13)
    ids = np.array([f"id{i}" for i in range(40)])
    pools = random_pools(rng, 40, 40, 12)
    group_ids = assess.exact_groups([f"r{i % 4}" for i in range(40)], pools)
    weights = rng.uniform(0.5, 2.0, size=len(group_ids)) if with_weights else None
    write_groups(ids, pools, group_ids, weights, tmp_path / "arrow.parquet")
    write_parquet(groups_table(ids, pools, group_ids, weights), tmp_path / "pandas.parquet")
    assert (tmp_path / "arrow.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    read_pools, read_ids, read_weights = read_groups(tmp_path / "arrow.parquet", ids)
    assert np.array_equal(read_pools.index, pools.index)
    assert np.array_equal(read_pools.offsets, pools.offsets)
    assert np.array_equal(read_pools.query, pools.query)
    assert np.array_equal(read_ids, group_ids)
    assert (read_weights is None) == (weights is None)
    if with_weights:
        assert np.array_equal(read_weights, weights)


def run_assess(tmp_path, name, config, *inputs):
    """assess.main writing groups/{name}.parquet and .json; their paths."""
    out = tmp_path / "groups" / f"{name}.parquet"
    argv = [
        *inputs,
        "--config",
        config,
        "--out",
        str(out),
        "--stats",
        str(out.with_suffix(".json")),
    ]
    assess.main(argv)
    return out, out.with_suffix(".json")


def test_global_groups_ignore_the_neighbours_and_take_the_recorded_eps(tmp_path):
    """Method global: the same groups and targets whatever the neighbours, DBSCAN on every
    train row at the eps the pools' groups recorded."""
    rng = np.random.default_rng(8)
    n = 60
    corpus, ids = write_corpus(tmp_path, [f"reply {i % 9}" for i in range(n)])
    centres = rng.normal(size=(5, 4))
    v = unit(centres[rng.integers(0, 5, n)] + 0.3 * rng.normal(size=(n, 4)))
    embeddings = tmp_path / "e.npz"
    save_embeddings(embeddings, ids, v, v)
    sample_config = to_json(settings(SampleConfig, "sample"))
    global_config = assess_config("dbscan", eps_quantile=None, pool=None)
    outputs = []
    for name, seed in (("a", 0), ("b", 1)):  # two different neighbour tables
        order = np.random.default_rng(seed).permutation(n)
        nb = write_neighbours(tmp_path, ids, [[i, *order[order != i][:12]] for i in range(n)])
        inputs = ["--corpus", str(corpus), "--embeddings", str(embeddings)]
        groups, stats = run_assess(
            tmp_path, name, assess_config("dbscan", eps=0.5), *inputs, "--neighbours", str(nb)
        )
        global_groups, global_stats = run_assess(
            tmp_path, f"{name}-global", global_config, *inputs, "--global-pool", str(stats)
        )
        targets = tmp_path / f"{name}-targets.parquet"
        sample.main(
            ["--corpus", str(corpus), "--groups", str(global_groups)]
            + ["--groups-stats", str(global_stats), "--method", "global", "--tau", "1.0"]
            + ["--m", "2", "--seed", "0", "--config", sample_config, "--out", str(targets)]
            + ["--stats", str(tmp_path / f"{name}-targets.json")]
        )
        outputs.append((groups, global_groups, targets))
    (a_groups, a_global, a_targets), (b_groups, b_global, b_targets) = outputs
    assert a_groups.read_bytes() != b_groups.read_bytes()  # the neighbours differ ...
    assert a_global.read_bytes() == b_global.read_bytes()  # ... global's groups do not
    assert a_targets.read_bytes() == b_targets.read_bytes()
    recorded = json.loads(a_global.with_suffix(".json").read_text())
    assert {k: recorded[k] for k in ("assessor", "pool", "encoder", "k", "eps", "pools")} == {
        "assessor": "dbscan",
        "pool": "global",
        "encoder": "e",
        "k": None,
        "eps": 0.5,
        "pools": 1,
    }
    _, group_ids, _ = read_groups(a_global, ids)
    assert np.array_equal(group_ids, assess.dbscan_groups_reference(v, global_pool(n), 0.5))
    # another recorded eps (as the eps rule resolves it) is the one the global groups take
    stats = json.loads((tmp_path / "groups" / "a.json").read_text())
    (tmp_path / "rule.json").write_text(json.dumps({**stats, "eps": 0.2}))
    wider, _ = run_assess(
        tmp_path, "rule-global", global_config, "--corpus", str(corpus),
        "--embeddings", str(embeddings), "--global-pool", str(tmp_path / "rule.json"),
    )  # fmt: skip
    _, group_ids, _ = read_groups(wider, ids)
    assert np.array_equal(group_ids, assess.dbscan_groups_reference(v, global_pool(n), 0.2))
    with pytest.raises(InputError, match="rule.json: groups of assessor dbscan, not exact"):
        run_assess(
            tmp_path, "x", assess_config("exact", pool=None), "--corpus", str(corpus),
            "--global-pool", str(tmp_path / "rule.json"),
        )  # fmt: skip
