"""The sampling benchmark scripts' core functions, on tiny inputs (they time nothing here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_sample  # noqa: E402
import hnsw_quality  # noqa: E402
import sampling_vs_loop  # noqa: E402
import scale  # noqa: E402
from isaac.embed import load_embeddings, save_embeddings  # noqa: E402
from isaac.io import train_rows  # noqa: E402
from isaac.neighbours import top_k_neighbours  # noqa: E402
from isaac.pools import pools_from_lists  # noqa: E402
from isaac.sample import SampleConfig  # noqa: E402


def tiny_inputs(tmp_path, n=60):
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(n)]
    corpus = pd.DataFrame(
        {
            "id": ids,
            "split": ["train"] * n,
            "prompt": [f"prompt {i % 7}" for i in range(n)],
            "response": [f"response {i % 5}" for i in range(n)],
            "label": ["safe" if i % 3 else "unsafe" for i in range(n)],
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet", index=False)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    save_embeddings(tmp_path / "e.npz", np.array(ids), vectors, vectors[::-1].copy())
    return tmp_path / "corpus.parquet", tmp_path / "e.npz", ids


def test_stage_commands_run_the_three_stages_as_processes_or_here_alike(tmp_path):
    corpus, embeddings, ids = tiny_inputs(tmp_path)
    for index in ("exact", "hnsw"):
        commands = sampling_vs_loop.stage_commands(
            corpus, embeddings, tmp_path, k=10, eps=1.0, index=index
        )
        assert [c[2] for c in commands] == ["isaac.neighbours", "isaac.assess", "isaac.sample"]
        seconds = sampling_vs_loop.run_stages(commands)
        assert len(seconds) == 3
        targets = pd.read_parquet(tmp_path / "targets.parquet")
        assert targets["id"].tolist() == ids
        assert all(t[0] in ids for t in targets["target_ids"])
        assert json.loads((tmp_path / "targets.json").read_text())["k"] == 10
        by_processes = (tmp_path / "targets.parquet").read_bytes()
        (tmp_path / "targets.parquet").unlink()
        assert sampling_vs_loop.run_in_process(commands) > 0  # the same stages, called here
        assert (tmp_path / "targets.parquet").read_bytes() == by_processes


def test_per_query_loop_draws_one_target_of_the_pool_per_example(tmp_path):
    corpus, embeddings, ids = tiny_inputs(tmp_path)
    targets = sampling_vs_loop.per_query_loop(corpus, embeddings, k=10, eps=1.0)
    assert len(targets) == len(ids) and set(targets) <= set(ids)
    assert targets == sampling_vs_loop.per_query_loop(corpus, embeddings, k=10, eps=1.0)
    # k = 1: the pool is the example itself, so every target is its own response
    assert sampling_vs_loop.per_query_loop(corpus, embeddings, k=1, eps=1.0) == ids


def test_synthetic_corpus_keeps_lengths_labels_and_duplicates():
    source = pd.DataFrame(
        {
            "prompt": [f"how are you today number {i}" for i in range(30)],
            "response": [f"i am fine thanks for asking {i}" for i in range(30)],
            "label": ["safe", "unsafe", "safe"] * 10,
            "category": ["a", "b", "c"] * 10,
        }
    )
    corpus = scale.synthetic_corpus(source, 2000, seed=1)
    assert len(corpus) == 2000 and corpus["id"].is_unique
    assert set(corpus["split"]) == {"train", "val", "test"}
    assert (corpus["split"] == "train").mean() > 0.85
    pairs = set(zip(source["prompt"], source["response"]))
    verbatim = np.mean([p in pairs for p in zip(corpus["prompt"], corpus["response"])])
    assert 0.4 < verbatim < 0.6  # half kept verbatim: repeated pairs
    words = corpus["response"].str.split().str.len()
    assert words.between(5, 8).all()  # one word more or less at most
    assert set(corpus["label"]) == {"safe", "unsafe"}
    assert corpus.equals(scale.synthetic_corpus(source, 2000, seed=1))


def test_recall_at_k_leaves_the_query_out():
    exact = np.array([[0, 1, 2], [1, 0, 2]])
    assert hnsw_quality.recall_at_k(exact, exact) == 1.0
    assert hnsw_quality.recall_at_k(np.array([[0, 1, 3], [1, 3, 4]]), exact) == 0.25


def test_eps_sweep_table_has_a_row_per_eps_with_the_cells_the_docs_show(tmp_path):
    corpus, embeddings, _ = tiny_inputs(tmp_path)
    train = train_rows(corpus)
    _, prompts, responses = load_embeddings(embeddings)
    pools = pools_from_lists(list(top_k_neighbours(prompts, 10)[0]))
    config = SampleConfig(top_k_groups=10, head_shortcut="strict", group_size="members")
    rows = bench_sample.eps_sweep(train, responses, pools, [0.5, 2.0], config)
    table = bench_sample.eps_sweep_table(rows)
    assert list(table.columns) == list(bench_sample.EPS_SWEEP_COLUMNS)
    assert list(table["eps"]) == ["0.5", "2"]
    assert list(table["pools all singletons"]) == [f"{rows[0]['all_singletons']:.3f}", "0.000"]
    assert table.loc[1, "mean groups per pool"] == "1.0"  # eps 2 joins every unit vector
