"""N-gram counts and document frequencies against hand-computed values."""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd
from nltk.util import ngrams

from isaac.ngrams import count_ngrams, main

DOCS = [["a", "b", "a", "b"], ["b", "a"], [], ["a"], ["c", "a", "b"]]


def as_dict(table, column):
    return dict(zip(table["ngram"], table[column]))


def test_unigrams_by_hand():
    table = count_ngrams(DOCS, 1)
    assert table["ngram"].tolist() == ["a", "b", "c"]
    assert table["count"].tolist() == [5, 4, 1]
    assert table["doc_freq"].tolist() == [4, 3, 1]


def test_bigrams_by_hand_never_cross_documents():
    table = count_ngrams(DOCS, 2)
    # "b b" (end of doc 0 + start of doc 1) and "a c" (doc 3 + doc 4) must not appear.
    assert as_dict(table, "count") == {"a b": 3, "b a": 2, "c a": 1}
    assert as_dict(table, "doc_freq") == {"a b": 2, "b a": 2, "c a": 1}
    assert table["ngram"].tolist() == ["a b", "b a", "c a"]  # count desc


def test_ties_are_sorted_by_ngram():
    table = count_ngrams([["z", "y", "x"], ["y"]], 1)
    assert table["ngram"].tolist() == ["y", "x", "z"]


def test_longer_than_any_document_gives_an_empty_table():
    table = count_ngrams(DOCS, 5)
    assert len(table) == 0 and list(table.columns) == ["ngram", "count", "doc_freq"]


def test_chunked_counting_matches_counter():
    rng = random.Random(0)
    docs = [[rng.choice("abcdef") for _ in range(rng.randint(0, 9))] for _ in range(300)]
    for n in (1, 2, 3):
        expected = Counter(" ".join(g) for d in docs for g in ngrams(d, n))
        expected_df = Counter(" ".join(g) for d in docs for g in set(ngrams(d, n)))
        for chunk in (5, 10**6):
            table = count_ngrams(docs, n, chunk_tokens=chunk)
            assert as_dict(table, "count") == dict(expected)
            assert as_dict(table, "doc_freq") == dict(expected_df)


def test_cli_counts_train_responses_only(tmp_path):
    corpus = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "test", "train"]})
    tokens = pd.DataFrame(
        {
            "id": ["c", "b", "a"],
            "prompt_tokens": [["p"], ["p"], ["p"]],
            "response_tokens": [["x", "y"], ["q", "q"], ["x"]],
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet")
    tokens.to_parquet(tmp_path / "tokens.parquet")
    out = tmp_path / "ngrams" / "n1.parquet"
    main(
        [
            "--tokens",
            str(tmp_path / "tokens.parquet"),
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--n",
            "1",
            "--out",
            str(out),
        ]
    )
    table = pd.read_parquet(out)
    assert as_dict(table, "count") == {"x": 2, "y": 1}


def counter_rows(docs, n):
    """The table by nltk and Counter, sorted by count desc then the joined string."""
    count = Counter(g for d in docs for g in ngrams(d, n))
    doc_freq = Counter(g for d in docs for g in set(ngrams(d, n)))
    rows = sorted(
        ((" ".join(g), c, doc_freq[g]) for g, c in count.items()), key=lambda row: (-row[1], row[0])
    )
    return [list(column) for column in zip(*rows)]


def test_order_and_counts_match_counter_with_long_ngrams_and_odd_tokens():
    """n-grams too many for packed keys (10 ** 20 > 2 ** 63), and tokens with spaces or empty
    ones, whose joined strings do not sort like their tuples: each ordered like Counter's."""
    rng = random.Random(1)
    plain = [[rng.choice("abcdefghij") for _ in range(rng.randint(15, 30))] for _ in range(200)]
    odd = [
        [rng.choice(["a", "a b", "", "b", "é", "A"]) for _ in range(rng.randint(0, 9))]
        for _ in range(200)
    ]
    for docs, n in ((plain, 20), (odd, 1), (odd, 2)):
        table = count_ngrams(docs, n, chunk_tokens=97)
        assert [table[c].tolist() for c in ("ngram", "count", "doc_freq")] == counter_rows(docs, n)
