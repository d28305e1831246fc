"""The sampling benchmark scripts' core functions, on tiny inputs (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, snakemake

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_sample  # noqa: E402
import hnsw_quality  # noqa: E402
import sampling_vs_loop  # noqa: E402
import scale  # noqa: E402
from isaac.assess import eps_from_quantile  # noqa: E402
from isaac.embed import load_embeddings, save_embeddings  # noqa: E402
from isaac.io import train_rows  # noqa: E402
from isaac.neighbours import top_k_neighbours  # noqa: E402
from isaac.pools import pools_from_lists  # noqa: E402
from isaac.runs import Run  # noqa: E402
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


def test_hnsw_quality_runs_the_three_stages_at_either_index(tmp_path):
    corpus, embeddings, ids = tiny_inputs(tmp_path)
    for index in ("exact", "hnsw"):
        commands = hnsw_quality.stage_commands(
            corpus, embeddings, tmp_path, k=10, eps=1.0, index=index, seed=0
        )
        assert [c[0] for c in commands] == ["isaac.neighbours", "isaac.assess", "isaac.sample"]
        hnsw_quality.run_stages(commands)
        targets = pd.read_parquet(tmp_path / "targets.parquet")
        assert targets["id"].tolist() == ids
        assert all(t[0] in ids for t in targets["target_ids"])
        assert json.loads((tmp_path / "targets.json").read_text())["k"] == 10
        (tmp_path / "targets.parquet").unlink()


def test_per_query_loop_draws_one_target_of_the_pool_per_example(tmp_path):
    corpus, embeddings, ids = tiny_inputs(tmp_path)
    targets, eps = sampling_vs_loop.per_query_loop(corpus, embeddings, k=10, eps=1.0)
    assert eps == 1.0
    assert len(targets) == len(ids) and set(targets) <= set(ids)
    assert sampling_vs_loop.per_query_loop(corpus, embeddings, k=10, eps=1.0)[0] == targets
    # k = 1: the pool is the example itself, so every target is its own response
    assert sampling_vs_loop.per_query_loop(corpus, embeddings, k=1, eps=1.0)[0] == ids


def test_per_query_loop_computes_the_eps_rule_as_the_assess_stage_does(tmp_path):
    corpus, embeddings, _ = tiny_inputs(tmp_path)
    _, prompts, responses = load_embeddings(embeddings)
    pools = pools_from_lists(list(top_k_neighbours(prompts, 10)[0]))
    for quantile in (0.2, 0.5, 0.9):
        _, eps = sampling_vs_loop.per_query_loop(corpus, embeddings, k=10, eps_quantile=quantile)
        assert eps == pytest.approx(eps_from_quantile(responses, pools, quantile), rel=1e-9)


def test_a_loop_eps_other_than_the_recorded_one_stops_the_benchmark(tmp_path):
    stats = tmp_path / "dbscan.json"
    stats.write_text(json.dumps({"eps": 0.5, "encoder": "tfidf", "k": 20}))
    assert sampling_vs_loop.checked_groups(stats, 0.5 * (1 + 1e-12))["encoder"] == "tfidf"
    with pytest.raises(RuntimeError, match="used eps 0.5, the loop 0.50000"):
        sampling_vs_loop.checked_groups(stats, 0.5 * (1 + 1e-7))


def test_in_folder_moves_outputs_and_logs_in_every_command_that_names_them(tmp_path):
    first = sampling_vs_loop.StageJob(
        "neighbours",
        "python -m isaac.neighbours --out 'results/a b/n.parquet' > logs/n.log 2>&1",
        ("results/a b/n.parquet",),
        "logs/n.log",
        2,
    )
    second = sampling_vs_loop.StageJob(
        "assess",
        "python -m isaac.assess --neighbours='results/a b/n.parquet' --out g.parquet",
        ("g.parquet",),
        "",
        2,
    )
    moved = sampling_vs_loop.in_folder([first, second], tmp_path)
    assert moved[0].argv == ["--out", f"{tmp_path}/results/a b/n.parquet"]
    assert moved[0].log == f"{tmp_path}/logs/n.log"
    assert moved[0].command.endswith(f"> {tmp_path}/logs/n.log 2>&1")
    assert moved[1].option("--neighbours") == f"{tmp_path}/results/a b/n.parquet"
    assert moved[1].option("--out") == f"{tmp_path}/g.parquet"
    assert (tmp_path / "results" / "a b").is_dir() and (tmp_path / "logs").is_dir()


def files_under(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.read_bytes())
        for folder in ("results", "logs")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


def test_the_benchmark_runs_the_workflows_commands_with_outputs_in_its_own_folder(tmp_path):
    """The tiny config with the eps rule: the commands are the workflow's, the outputs go to
    the benchmark's folder (the same bytes), and the workflow's files stay as Snakemake built
    them."""
    workdir, folder = tmp_path / "work", tmp_path / "bench"
    workdir.mkdir()
    rule = tmp_path / "eps-rule.yaml"
    rule.write_text("assess:\n  eps: null\n  eps_quantile: 0.5\n")
    layers = [str(TINY_CONFIG), str(rule)]
    run = Run("isaac", 1.0, 1, 0)
    target = sampling_vs_loop.target(layers, run)
    assert target == "results/tiny/targets/isaac/tau1.0-m1-seed0.parquet"
    snakemake(workdir, "--cores", "2", target, configfiles=(TINY_CONFIG, rule))
    built = files_under(workdir)

    jobs = sampling_vs_loop.workflow_jobs(workdir, layers, run)
    assert [job.module for job in jobs] == ["isaac.neighbours", "isaac.assess", "isaac.sample"]
    assert [job.threads for job in jobs] == [2, 2, 1]
    assert jobs[0].config()["k"] == 20  # from the tiny layer
    assert jobs[1].config()["eps"] is None and jobs[1].config()["eps_quantile"] == 0.5
    assert jobs[2].option("--out") == target
    moved = sampling_vs_loop.in_folder(jobs, folder)
    result = sampling_vs_loop.side_by_side(moved, workdir, repeats=1)

    assert files_under(workdir) == built
    assert (folder / target).read_bytes() == (workdir / target).read_bytes()
    assert (folder / jobs[2].log).is_file()
    recorded = json.loads((workdir / "results/tiny/groups/dbscan.json").read_text())
    assert result["eps"] == recorded["eps"] and result["eps_quantile"] == 0.5
    assert (result["encoder"], result["k"]) == ("tfidf", 20)
    assert len(result["loop_s"]) == len(result["stages_s"]) == len(result["in_process_s"]) == 1
    build = sampling_vs_loop.build_job_seconds(workdir, layers)
    assert {"ingest", "embed", "neighbours", "assess", "sample"} <= set(build), build
    assert all(seconds > 0 for seconds in build.values()), build


def test_a_missing_config_layer_is_one_error_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sampling_vs_loop.py"), "--configfile", "none.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: none.yaml: no such config file"
    assert not (tmp_path / "results").exists()


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
