"""Rank-frequency figures and the numbers behind them."""

from __future__ import annotations

import pandas as pd
import pytest

from isaac.demo import generate
from isaac.io import InputError
from isaac.longtail import main, plot_ngrams, plot_responses, rank_frequency, unsafe_by_frequency
from isaac.ngrams import count_ngrams

PNG = b"\x89PNG\r\n\x1a\n"


def test_rank_frequency_is_sorted_counts():
    assert rank_frequency(pd.Series(["a", "b", "a", "c", "a", "b"])).tolist() == [3, 2, 1]


def test_unsafe_share_by_frequency_bins():
    strings = pd.Series(["x", "x", "x", "y", "z"])
    labels = pd.Series(["safe", "safe", "unsafe", "unsafe", None])
    table = unsafe_by_frequency(strings, labels)
    assert table.to_dict("list") == {"bin": ["1", "2-3"], "n": [1, 3],
                                     "unsafe": [1.0, pytest.approx(1 / 3)]}


def test_figures_are_written(tmp_path):
    corpus = generate(seed=0, n_prompts=120)
    plot_responses(corpus, tmp_path / "r.png", dpi=60)
    unlabelled = corpus.assign(label=None, category=None)
    plot_responses(unlabelled, tmp_path / "u.png", dpi=60)
    tables = []
    for n in (1, 2):
        path = tmp_path / f"n{n}.parquet"
        count_ngrams([r.lower().split() for r in corpus["response"]], n).to_parquet(path)
        tables.append(path)
    plot_ngrams(tables, tmp_path / "g.png", dpi=60)
    for name in ("r.png", "u.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == [
        "g.png", "r.png", "u.png"]  # no temporary files left behind


def test_cli_needs_a_train_split(tmp_path):
    corpus = generate(seed=0, n_prompts=60).assign(split="test")
    corpus.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(InputError, match="no train rows"):
        main(["responses", "--corpus", str(tmp_path / "c.parquet"), "--out",
              str(tmp_path / "f.png")])
    assert not (tmp_path / "f.png").exists()
