"""Count the n-grams of the train responses: the raw material of the long-tail figures.

Counting is vectorised: tokens are factorised to integer codes once, the n-grams of all
responses become rows of an (N, n) integer matrix, and pandas counts them by hashing. Only the
distinct n-grams are turned back into strings. Responses are processed in chunks whose partial
counts are summed, so memory stays bounded on corpora of millions of responses.
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


def _count_chunk(codes: np.ndarray, doc: np.ndarray, n: int) -> pd.DataFrame:
    """count and doc_freq per n-gram (as code tuples) for one chunk of whole documents."""
    if len(codes) < n:
        return pd.DataFrame(columns=[*range(n), "count", "doc_freq"])
    starts = np.arange(len(codes) - n + 1)
    starts = starts[doc[starts] == doc[starts + n - 1]]  # n-gram inside one document
    grams = pd.DataFrame({j: codes[starts + j] for j in range(n)})
    keys = list(range(n))
    count = grams.value_counts(sort=False).rename("count")
    grams["doc"] = doc[starts]
    doc_freq = grams.drop_duplicates().drop(columns="doc").value_counts(sort=False).rename("doc_freq")
    return pd.concat([count, doc_freq], axis=1).reset_index(names=keys)


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
    keys = list(range(n))
    if parts:
        table = pd.concat(parts, ignore_index=True)
        if len(parts) > 1:
            table = table.groupby(keys, sort=False, as_index=False)[["count", "doc_freq"]].sum()
    else:
        table = pd.DataFrame(columns=[*keys, "count", "doc_freq"])
    if len(table):
        ngram = vocab[table[0].to_numpy(dtype=np.int64)]
        for j in range(1, n):
            ngram = ngram + " " + vocab[table[j].to_numpy(dtype=np.int64)]
    else:
        ngram = np.array([], dtype=object)
    out = pd.DataFrame(
        {
            "ngram": pd.Series(ngram, dtype=object),
            "count": table["count"].to_numpy(dtype=np.int64),
            "doc_freq": table["doc_freq"].to_numpy(dtype=np.int64),
        }
    )
    order = np.lexsort((out["ngram"].to_numpy(dtype=str), -out["count"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


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
