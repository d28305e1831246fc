"""Count the n-grams of the train responses: the raw material of the long-tail figures.

Counting is vectorised: tokens are factorised to integer codes once, each n-gram becomes one
integer key (its code columns folded pairwise by factorisation, so keys stay small whatever n
and the vocabulary), and counts and document frequencies are `np.bincount`s of the keys. Only
the distinct n-grams are turned back into strings. Responses are processed in chunks whose
partial counts are summed, so memory stays bounded on corpora of millions of responses.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.tokenize import flatten

log = logging.getLogger("isaac.ngrams")

CHUNK_TOKENS = 5_000_000


def _row_keys(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct row of the integer `columns` (0, 1, ... in order of first
    appearance) and the position of each key's first row."""
    key = columns[0]
    for column in columns[1:]:
        # key < number of rows and column < vocabulary size: the product fits in an int64
        key = pd.factorize(key * (int(column.max()) + 1) + column)[0]
    if len(columns) == 1:
        key = pd.factorize(key)[0]
    first = np.unique(key, return_index=True)[1]
    return key, first


def _count_chunk(codes: np.ndarray, doc: np.ndarray, n: int) -> tuple[list, np.ndarray, np.ndarray]:
    """(code columns, count, doc_freq) of the distinct n-grams of whole documents."""
    starts = np.arange(max(len(codes) - n + 1, 0))
    starts = starts[doc[starts] == doc[starts + n - 1]]  # n-gram inside one document
    if not len(starts):
        return [np.zeros(0, dtype=np.int64)] * n, np.zeros(0, np.int64), np.zeros(0, np.int64)
    columns = [codes[starts + j] for j in range(n)]
    key, first = _row_keys(columns)
    count = np.bincount(key, minlength=len(first))
    in_doc = doc[starts] - doc[0]
    pairs = pd.unique(key * (int(in_doc[-1]) + 1) + in_doc)  # distinct (n-gram, document)
    doc_freq = np.bincount(pairs // (int(in_doc[-1]) + 1), minlength=len(first))
    return [column[first] for column in columns], count, doc_freq


def count_ngrams(token_lists: Sequence[Sequence[str]], n: int,
                 chunk_tokens: int = CHUNK_TOKENS) -> pd.DataFrame:
    """Table ngram (tokens joined by one space), count, doc_freq; sorted by count desc, ngram."""
    if n < 1:
        raise InputError(f"ngrams: n must be >= 1, got {n}")
    flat, lengths = flatten(token_lists)
    doc = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
    codes, vocab = pd.factorize(flat) if len(flat) else (np.array([], dtype=np.int64), np.array([]))
    vocab = np.asarray(vocab, dtype=object)
    parts = []
    # Chunk on document boundaries so no n-gram and no document is split between chunks.
    bounds = np.searchsorted(doc, np.arange(0, len(token_lists) + 1), side="left")
    start_doc = 0
    while start_doc < len(token_lists):
        lo = bounds[start_doc]
        end_doc = int(np.searchsorted(bounds, lo + chunk_tokens, side="right")) - 1
        end_doc = min(max(end_doc, start_doc + 1), len(token_lists))
        hi = bounds[end_doc]
        parts.append(_count_chunk(codes[lo:hi], doc[lo:hi], n))
        start_doc = end_doc
    columns = [np.concatenate([part[0][j] for part in parts]) if parts else np.zeros(0, np.int64)
               for j in range(n)]
    count = np.concatenate([part[1] for part in parts]) if parts else np.zeros(0, np.int64)
    doc_freq = np.concatenate([part[2] for part in parts]) if parts else np.zeros(0, np.int64)
    if len(parts) > 1 and len(count):  # the same n-gram in several chunks: sum its rows
        key, first = _row_keys(columns)
        count = np.bincount(key, weights=count, minlength=len(first)).astype(np.int64)
        doc_freq = np.bincount(key, weights=doc_freq, minlength=len(first)).astype(np.int64)
        columns = [column[first] for column in columns]
    ngram = vocab[columns[0]]
    for column in columns[1:]:
        ngram = ngram + " " + vocab[column]
    return _table(ngram, count, doc_freq, columns, vocab)


def _table(ngram, count, doc_freq, columns, vocab) -> pd.DataFrame:
    """The rows by count desc, then ngram. Joined strings compare like their token tuples when
    every token is non-empty and has no character <= " " (the tokenizers split on
    whitespace), so the tie order comes from integer token ranks; otherwise from the strings."""
    if all(token and min(token) > " " for token in vocab):
        rank = np.empty(len(vocab), dtype=np.int64)
        rank[np.argsort(vocab.astype(str), kind="stable")] = np.arange(len(vocab))
        order = np.lexsort([rank[column] for column in reversed(columns)] + [-count])
    else:
        by_ngram = np.argsort(ngram, kind="stable")
        order = by_ngram[np.argsort(-count[by_ngram], kind="stable")]
    return pd.DataFrame(
        {
            "ngram": pd.Series(ngram[order], dtype=object),
            "count": count[order].astype(np.int64),
            "doc_freq": doc_freq[order].astype(np.int64),
        }
    )


def train_response_tokens(tokens: pd.DataFrame, corpus: pd.DataFrame) -> list[list[str]]:
    """Response token lists of the train split, in corpus order."""
    train_ids = corpus.loc[corpus["split"] == "train", "id"]
    by_id = tokens.set_index("id")["response_tokens"]
    missing = ~train_ids.isin(by_id.index)
    if missing.any():
        raise InputError(f"tokens table lacks train id {train_ids[missing].iloc[0]!r}")
    return [list(t) for t in by_id.loc[train_ids.to_numpy()]]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isaac.ngrams", description=__doc__)
    parser.add_argument("--tokens", required=True, help="tokens.parquet")
    parser.add_argument("--corpus", required=True, help="corpus.parquet (for the split)")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True, help="ngrams/n{n}.parquet to write")
    args = parser.parse_args(argv)
    tokens = read_table(args.tokens, ["id", "response_tokens"])
    corpus = read_table(args.corpus, ["id", "split"])
    table = count_ngrams(train_response_tokens(tokens, corpus), args.n)
    write_parquet(table, args.out)
    log.info("%d distinct %d-grams -> %s", len(table), args.n, args.out)


if __name__ == "__main__":
    run(main)
