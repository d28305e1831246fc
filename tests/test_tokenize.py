"""Data-free tokenisation with the configured options."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac.io import InputError
from isaac.settings import to_json
from isaac.text import words
from isaac.tokenize import (
    TokenizeConfig,
    flatten,
    main,
    make_tokenizer,
    tokenize_corpus,
    tokenize_distinct,
)


def config(**overrides) -> TokenizeConfig:
    """The tokenize section: schema defaults with `overrides`."""
    return settings(TokenizeConfig, "tokenize", **overrides)


def test_treebank_splits_punctuation_and_contractions():
    tok = make_tokenizer(config(tokenizer="treebank"))
    assert tok("I can't  do it, sorry!") == ["i", "ca", "n't", "do", "it", ",", "sorry", "!"]


def test_regexp_keeps_contractions_whole():
    tok = make_tokenizer(config(tokenizer="regexp"))
    assert tok("I can't do it, sorry!!") == ["i", "can't", "do", "it", ",", "sorry", "!!"]


def test_the_scores_words_split_what_the_regexp_tokenizer_keeps_whole():
    text = "I can't  do e-mail, sorry!!"
    assert words(text) == ["i", "can", "'", "t", "do", "e", "-", "mail", ",", "sorry", "!", "!"]
    regexp = make_tokenizer(config(tokenizer="regexp", lowercase=True))
    assert regexp(text) == ["i", "can't", "do", "e-mail", ",", "sorry", "!!"]


def test_lowercase_option():
    assert make_tokenizer(config(lowercase=False))("Hello World") == ["Hello", "World"]
    assert make_tokenizer(config(lowercase=True))("Hello World") == ["hello", "world"]


def test_unknown_tokenizer_is_an_input_error():
    with pytest.raises(InputError, match="unknown"):
        make_tokenizer(config(tokenizer="punkt"))


def test_flatten_puts_tokens_end_to_end_with_lengths():
    flat, lengths = flatten([["a", "b"], [], ["c"], ("d", "e", "f")])
    assert flat.dtype == object and flat.tolist() == ["a", "b", "c", "d", "e", "f"]
    assert lengths.dtype == np.int64 and lengths.tolist() == [2, 0, 1, 3]
    flat, lengths = flatten([])
    assert flat.tolist() == [] and lengths.tolist() == []


def test_tokenize_corpus_keeps_every_split_and_id(tmp_path):
    corpus = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "split": ["train", "val", "test"],
            "prompt": ["Hi there", "Why?", "x"],
            "response": ["Yo.", "", "Yo."],
        }
    )
    tokens = tokenize_corpus(corpus, config())
    assert tokens["id"].tolist() == ["a", "b", "c"]
    assert tokens["response_tokens"].tolist() == [["yo", "."], [], ["yo", "."]]
    assert tokens["prompt_tokens"].tolist()[1] == ["why", "?"]
    corpus.to_parquet(tmp_path / "corpus.parquet")
    main(
        [
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--out",
            str(tmp_path / "t.parquet"),
            "--config",
            to_json(config(lowercase=False)),
        ]
    )
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert [list(x) for x in back["prompt_tokens"]] == [["Hi", "there"], ["Why", "?"], ["x"]]


def test_worker_processes_give_the_output_of_one_process(tmp_path, monkeypatch):
    words = ["I", "can't", "go", "--", "it's", "fine!", "(ok)", '"quoted"', "U.S.", "e-mail"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(500)]
    one = tokenize_distinct(texts, config(), processes=1)
    assert tokenize_distinct(texts, config(), processes=3, min_texts_per_process=10) == one
    assert sum(map(len, one)) > 1000
    # the CLI with --threads: the same table, byte for byte
    corpus = pd.DataFrame(
        {
            "id": [str(i) for i in range(250)],
            "split": "train",
            "prompt": texts[:250],
            "response": texts[250:],
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet")
    monkeypatch.setattr("isaac.tokenize.MIN_TEXTS_PER_PROCESS", 10)
    for threads in ("1", "2"):
        main(
            [
                "--corpus",
                str(tmp_path / "corpus.parquet"),
                "--config",
                to_json(config()),
                "--threads",
                threads,
                "--out",
                str(tmp_path / f"t{threads}.parquet"),
            ]
        )
    assert (tmp_path / "t1.parquet").read_bytes() == (tmp_path / "t2.parquet").read_bytes()


def test_missing_corpus_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nothing.parquet"):
        main(
            [
                "--corpus",
                str(tmp_path / "nothing.parquet"),
                "--out",
                str(tmp_path / "t.parquet"),
                "--config",
                to_json(config()),
            ]
        )
    assert not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize(
    "change,fragment",
    [
        pytest.param(lambda c: c.pop("lowercase"), "missing key(s) lowercase", id="missing"),
        pytest.param(
            lambda c: c.update(strip_accents=True), "unknown key(s) strip_accents", id="unknown"
        ),
        pytest.param(lambda c: c.update(lowercase="false"), "--config.lowercase", id="wrong-type"),
    ],
)
def test_cli_config_must_hold_exactly_the_tokenize_keys(tmp_path, change, fragment):
    pd.DataFrame({"id": ["a"], "prompt": ["p"], "response": ["r"]}).to_parquet(
        tmp_path / "corpus.parquet"
    )
    cfg = schema_defaults("tokenize")
    change(cfg)
    out = tmp_path / "t.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isaac.tokenize",
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--config",
            json.dumps(cfg),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and fragment in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet"]
