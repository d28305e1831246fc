"""Data-free tokenisation with the configured options."""

from __future__ import annotations

import pandas as pd
import pytest

from isaac.io import InputError
from isaac.tokens import main, make_tokenizer, tokenize_corpus


def test_treebank_splits_punctuation_and_contractions():
    tok = make_tokenizer("treebank")
    assert tok("I can't  do it, sorry!") == ["i", "ca", "n't", "do", "it", ",", "sorry", "!"]


def test_regexp_keeps_contractions_whole():
    tok = make_tokenizer("regexp")
    assert tok("I can't do it, sorry!!") == ["i", "can't", "do", "it", ",", "sorry", "!!"]


def test_lowercase_option():
    assert make_tokenizer("treebank", lowercase=False)("Hello World") == ["Hello", "World"]
    assert make_tokenizer("treebank", lowercase=True)("Hello World") == ["hello", "world"]


def test_unknown_tokenizer_is_an_input_error():
    with pytest.raises(InputError, match="unknown"):
        make_tokenizer("punkt")


def test_tokenize_corpus_keeps_every_split_and_id(tmp_path):
    corpus = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "val", "test"],
                           "prompt": ["Hi there", "Why?", "x"], "response": ["Yo.", "", "Yo."]})
    tokens = tokenize_corpus(corpus)
    assert tokens["id"].tolist() == ["a", "b", "c"]
    assert tokens["response_tokens"].tolist() == [["yo", "."], [], ["yo", "."]]
    assert tokens["prompt_tokens"].tolist()[1] == ["why", "?"]
    corpus.to_parquet(tmp_path / "corpus.parquet")
    main(["--corpus", str(tmp_path / "corpus.parquet"), "--out", str(tmp_path / "t.parquet"),
          "--lowercase", "false"])
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert [list(x) for x in back["prompt_tokens"]] == [["Hi", "there"], ["Why", "?"], ["x"]]


def test_missing_corpus_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nothing.parquet"):
        main(["--corpus", str(tmp_path / "nothing.parquet"), "--out", str(tmp_path / "t.parquet")])
    assert not (tmp_path / "t.parquet").exists()
