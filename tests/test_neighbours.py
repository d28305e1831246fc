"""Neighbours: self first (also with duplicate prompts), deterministic ties, k > n, table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults
from isaac import neighbours
from isaac.cli import run
from isaac.embed import save_embeddings
from isaac.io import InputError


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(vectors, k):
    """Full stable sort per row: self first, then -similarity, then index."""
    sims = vectors @ vectors.T
    out = []
    for i, row in enumerate(sims):
        others = sorted((j for j in range(len(row)) if j != i), key=lambda j: (-row[j], j))
        out.append([i, *others][:k])
    return np.array(out)


def test_matches_a_brute_force_sort_on_random_vectors():
    rng = np.random.default_rng(0)
    v = unit(rng.normal(size=(97, 6)))
    idx, sims = neighbours.top_k_neighbours(v, 12, chunk_size=10)
    assert np.array_equal(idx, brute_force(v, 12))
    np.testing.assert_allclose(sims, np.take_along_axis(v @ v.T, idx, axis=1), atol=1e-6)
    assert np.all(np.diff(sims[:, 1:], axis=1) <= 1e-7)


def test_query_is_first_even_when_duplicates_exist_and_ties_go_by_index():
    v = unit([[1, 0], [0, 1], [1, 0], [1, 0], [0.9, 0.1]])  # rows 0, 2, 3 are identical
    idx, sims = neighbours.top_k_neighbours(v, 3, chunk_size=2)
    assert idx[0].tolist() == [0, 2, 3]
    assert idx[2].tolist() == [2, 0, 3]
    assert idx[3].tolist() == [3, 0, 2]
    # boundary ties: only one of the three identical rows fits after the query and row 4
    idx2, _ = neighbours.top_k_neighbours(v, 2)
    assert idx2[4].tolist() == [4, 0]  # 0 < 2 < 3: lowest index wins the tie


def test_result_does_not_depend_on_the_chunk_size():
    rng = np.random.default_rng(1)
    v = unit(rng.integers(1, 3, size=(50, 4)) + 0.0)  # 16 distinct rows: many exact ties
    a = neighbours.top_k_neighbours(v, 7, chunk_size=3)
    b = neighbours.top_k_neighbours(v, 7, chunk_size=1000)
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[0], brute_force(v, 7))


@pytest.mark.parametrize("k", [5, 6, 100])
def test_k_larger_than_the_corpus_is_clipped(k):
    v = unit(np.random.default_rng(2).normal(size=(5, 3)))
    idx, sims = neighbours.top_k_neighbours(v, k)
    assert idx.shape == (5, 5)
    assert np.array_equal(idx[:, 0], np.arange(5))
    assert all(sorted(row) == list(range(5)) for row in idx.tolist())


def test_cli_writes_the_contracted_table(tmp_path):
    v = unit(np.random.default_rng(3).normal(size=(8, 4)))
    ids = np.array([f"id{i}" for i in range(8)])
    save_embeddings(tmp_path / "e.npz", ids, v, v)
    out = tmp_path / "n.parquet"
    config = json.dumps({**schema_defaults("neighbours"), "k": 3})
    neighbours.main(
        ["--embeddings", str(tmp_path / "e.npz"), "--config", config, "--out", str(out)]
    )
    table = pd.read_parquet(out)
    assert table.columns.tolist() == ["id", "neighbour_ids", "similarities"]
    assert table["id"].tolist() == ids.tolist()
    assert all(list(n)[0] == i for i, n in zip(table["id"], table["neighbour_ids"]))
    assert all(len(s) == 3 for s in table["similarities"])
    # deterministic bytes
    neighbours.main(
        [
            "--embeddings",
            str(tmp_path / "e.npz"),
            "--config",
            config,
            "--out",
            str(tmp_path / "n2.parquet"),
        ]
    )
    assert out.read_bytes() == (tmp_path / "n2.parquet").read_bytes()


def clustered(n, dim, seed):
    """Unit vectors around a few centres, with exact duplicates: ties and near-ties."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim))
    v = centres[rng.integers(0, 12, size=n)] + 0.6 * rng.normal(size=(n, dim))
    v[n // 2 : n // 2 + 20] = v[:20]
    return unit(v)


def test_hnsw_finds_most_exact_neighbours_in_the_same_layout():
    v = clustered(1500, 24, 5)
    exact, _ = neighbours.top_k_neighbours(v, 30)
    approx, sims = neighbours.hnsw_neighbours(v, 30)
    assert approx.shape == exact.shape and approx.dtype == exact.dtype
    assert np.array_equal(approx[:, 0], np.arange(len(v)))  # the query first
    assert all(len(set(row)) == 30 for row in approx.tolist())  # no repeats
    recall = np.mean([len(set(a[1:]) & set(e[1:])) / 29 for a, e in zip(approx, exact)])
    assert recall > 0.95, recall
    np.testing.assert_allclose(sims, np.take_along_axis(v @ v.T, approx, axis=1), atol=1e-5)
    others = sims[:, 1:]
    assert np.all(np.diff(others, axis=1) <= 0)  # descending after the query


def test_hnsw_is_deterministic_whatever_the_search_threads():
    v = clustered(800, 16, 6)
    a = neighbours.hnsw_neighbours(v, 12, threads=1)
    b = neighbours.hnsw_neighbours(v, 12, threads=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("k", [4, 5, 50])
def test_hnsw_with_k_at_or_above_the_corpus_size_returns_every_row(k):
    v = unit(np.random.default_rng(7).normal(size=(5, 3)))
    idx, _ = neighbours.hnsw_neighbours(v, k)
    assert idx.shape == (5, min(k, 5))
    assert np.array_equal(idx[:, 0], np.arange(5))
    if k >= 5:
        assert all(sorted(row) == list(range(5)) for row in idx.tolist())


def test_cli_hnsw_writes_the_exact_table_format_deterministically(tmp_path):
    v = clustered(300, 8, 8)
    ids = np.array([f"id{i}" for i in range(300)])
    save_embeddings(tmp_path / "e.npz", ids, v, v)
    tables = []
    for index, name in (("exact", "x"), ("hnsw", "h1"), ("hnsw", "h2")):
        neighbours.main(
            [
                "--embeddings",
                str(tmp_path / "e.npz"),
                "--config",
                json.dumps({"k": 10, "index": index}),
                "--threads",
                "2",
                "--out",
                str(tmp_path / f"{name}.parquet"),
            ]
        )
        tables.append(pd.read_parquet(tmp_path / f"{name}.parquet"))
    assert (tmp_path / "h1.parquet").read_bytes() == (tmp_path / "h2.parquet").read_bytes()
    exact, hnsw = tables[0], tables[1]
    assert hnsw.columns.tolist() == exact.columns.tolist()
    assert hnsw.dtypes.tolist() == exact.dtypes.tolist()
    assert hnsw["id"].tolist() == exact["id"].tolist()
    assert [len(x) for x in hnsw["neighbour_ids"]] == [10] * 300


def test_cli_refuses_k_larger_than_the_train_split(tmp_path):
    v = unit(np.random.default_rng(3).normal(size=(8, 4)))
    save_embeddings(tmp_path / "e.npz", np.array([f"id{i}" for i in range(8)]), v, v)
    out = tmp_path / "n.parquet"
    config = json.dumps({**schema_defaults("neighbours"), "k": 9})
    with pytest.raises(InputError, match="neighbours.k: 9 is more than the 8 train rows of"):
        neighbours.main(
            ["--embeddings", str(tmp_path / "e.npz"), "--config", config, "--out", str(out)]
        )
    assert not out.exists()


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "missing key(s) k"),
        ({"k": 3, "index": "exact", "chunk_size": 512}, "unknown key(s) chunk_size"),
        ({"k": "3", "index": "exact"}, "--config.k"),
        ({"k": 3, "index": "annoy"}, "index must be one of exact, hnsw"),
    ],
)
def test_cli_config_with_a_missing_unknown_or_mistyped_key_exits_2(
    tmp_path, capsys, config, message
):
    v = unit(np.random.default_rng(4).normal(size=(4, 3)))
    save_embeddings(tmp_path / "e.npz", np.array(["a", "b", "c", "d"]), v, v)
    out = tmp_path / "n.parquet"
    argv = [
        "--embeddings",
        str(tmp_path / "e.npz"),
        "--config",
        json.dumps(config),
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as exit_info:
        run(neighbours.main, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_packed_sort_orders_like_lexsort_with_ties_and_signed_zeros():
    rng = np.random.default_rng(11)
    rows = rng.integers(0, 50, size=3000)
    cols = rng.permutation(3000) % 700
    values = rng.choice(np.array([-1.5, -0.0, 0.0, 0.25, 1.0, np.inf], dtype=np.float32), 3000)
    r, c = neighbours._sort_by_row_value_index(rows, cols, values, 50, 700)
    order = np.lexsort((cols, -values, rows))
    assert np.array_equal(r, rows[order]) and np.array_equal(c, cols[order])


def test_arrow_writer_gives_the_bytes_of_the_pandas_table(tmp_path):
    from isaac.io import write_parquet

    v = clustered(120, 6, 12)
    ids = np.array([f"row-{i}" for i in range(120)])
    idx, sims = neighbours.top_k_neighbours(v, 9)
    neighbours.write_neighbours(ids, idx, sims, tmp_path / "arrow.parquet")
    write_parquet(neighbours.neighbours_table(ids, idx, sims), tmp_path / "pandas.parquet")
    assert (tmp_path / "arrow.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
