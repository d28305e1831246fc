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


def test_cli_refuses_k_larger_than_the_train_split(tmp_path):
    v = unit(np.random.default_rng(3).normal(size=(8, 4)))
    save_embeddings(tmp_path / "e.npz", np.array([f"id{i}" for i in range(8)]), v, v)
    out = tmp_path / "n.parquet"
    config = json.dumps({**schema_defaults("neighbours"), "k": 9})
    with pytest.raises(InputError, match="neighbours.k: 9 is more than the 8 train rows of"):
        neighbours.main(["--embeddings", str(tmp_path / "e.npz"), "--config", config,
                         "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "missing key(s) k"),
        ({"k": 3, "chunk_size": 512}, "unknown key(s) chunk_size"),
        ({"k": "3"}, "--config.k"),
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
