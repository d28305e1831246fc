"""Count the n-grams of the train responses: the raw material of the long-tail figures.

Counting is vectorised in Arrow and NumPy: the tokens are dictionary-encoded once, each token's
code is replaced by its rank in the sorted vocabulary, and each n-gram becomes one integer key
(the ranks packed in base |vocabulary| where that fits in 64 bits, which also orders the keys as
the token tuples; otherwise folded pairwise by factorisation). Counts and document frequencies
are `np.bincount`s of hashed key codes. Only the distinct n-grams are joined into strings, by
Arrow. Responses are processed in chunks whose partial counts are summed, so memory stays
bounded on corpora of millions of responses.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from isaac.cli import run
from isaac.io import InputError, read_table, write_arrow_parquet

log = logging.getLogger("isaac.ngrams")

CHUNK_TOKENS = 5_000_000


def _token_lists(token_lists) -> pa.ListArray:
    """The documents as one Arrow list<string> array (a list column read from Parquet is used
    as it is; Python lists are converted once)."""
    if isinstance(token_lists, pa.ChunkedArray):
        token_lists = token_lists.combine_chunks()
    if not isinstance(token_lists, pa.ListArray):
        token_lists = pa.array(list(token_lists), type=pa.list_(pa.string()))
    return token_lists


def _first_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, position of each code's first value), codes 0, 1, ... by first
    appearance: a code is new exactly where the running maximum of the codes grows."""
    codes = pd.factorize(values)[0]
    if not len(codes):
        return codes, codes
    grows = np.empty(len(codes), dtype=bool)
    grows[0] = True
    grows[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return codes, np.flatnonzero(grows)


def _keys(columns: Sequence[np.ndarray], vocabulary: int) -> tuple[np.ndarray, bool]:
    """(one int64 per row of the rank columns, whether the keys sort like the rows: packed in
    base `vocabulary` where that fits in 64 bits, else folded pairwise by factorisation)."""
    if vocabulary ** len(columns) < 2**63:
        key = columns[0].astype(np.int64)
        for column in columns[1:]:
            key = key * vocabulary + column
        return key, True
    key = columns[0].astype(np.int64)
    for column in columns[1:]:
        # key < number of rows and column < vocabulary size: the product fits in an int64
        key = pd.factorize(key * vocabulary + column)[0].astype(np.int64)
    return key, False


def _aggregate(columns, doc, count, doc_freq, vocabulary: int):
    """Sum rows with equal rank columns: (distinct columns, count, doc_freq). With `doc` given
    (one document number per row, rows = single n-grams) doc_freq counts distinct documents;
    otherwise the given counts and doc_freqs (of disjoint sets of documents) are added."""
    key, _ = _keys(columns, vocabulary)
    codes, first = _first_codes(key)
    if doc is not None:
        span = int(doc.max()) + 1
        pairs = pd.unique(codes * span + doc)  # distinct (n-gram, document)
        return (
            [c[first] for c in columns],
            np.bincount(codes, minlength=len(first)),
            np.bincount(pairs // span, minlength=len(first)),
        )
    return (
        [c[first] for c in columns],
        np.bincount(codes, weights=count, minlength=len(first)).astype(np.int64),
        np.bincount(codes, weights=doc_freq, minlength=len(first)).astype(np.int64),
    )


def ngram_columns(token_lists, n: int, chunk_tokens: int = CHUNK_TOKENS) -> dict[str, pa.Array]:
    """The n-gram table as Arrow columns ngram (tokens joined by one space), count, doc_freq;
    sorted by count desc, then ngram.

    `token_lists`: one token list per document (Python sequences or an Arrow list array)."""
    if n < 1:
        raise InputError(f"ngrams: n must be >= 1, got {n}")
    lists = _token_lists(token_lists)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy().astype(np.int64)
    encoded = lists.flatten().dictionary_encode()
    vocab = encoded.dictionary
    by_string = pc.sort_indices(vocab).to_numpy()  # code-point order, like Python's str
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[by_string] = np.arange(len(vocab))
    tokens = rank[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    parts = []
    # Chunk on document boundaries so no n-gram and no document is split between chunks.
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    start_doc = 0
    while start_doc < len(lengths):
        lo = bounds[start_doc]
        end_doc = int(np.searchsorted(bounds, lo + chunk_tokens, side="right")) - 1
        end_doc = min(max(end_doc, start_doc + 1), len(lengths))
        hi = bounds[end_doc]
        starts = np.arange(lo, max(hi - n + 1, lo))
        starts = starts[doc[starts] == doc[starts + n - 1]]  # n-gram inside one document
        if len(starts):
            columns = [tokens[starts + j] for j in range(n)]
            parts.append(_aggregate(columns, doc[starts], None, None, len(vocab)))
        start_doc = end_doc
    if not parts:
        columns = [np.zeros(0, np.int64)] * n
        count = doc_freq = np.zeros(0, np.int64)
    elif len(parts) == 1:
        columns, count, doc_freq = parts[0]
    else:  # the same n-gram in several chunks: sum its rows
        columns = [np.concatenate([part[0][j] for part in parts]) for j in range(n)]
        columns, count, doc_freq = _aggregate(
            columns,
            None,
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            len(vocab),
        )
    sorted_vocab = vocab.take(pa.array(by_string))
    order = _order(columns, count, sorted_vocab)
    return {
        "ngram": _join(sorted_vocab, [column[order] for column in columns]),
        "count": pa.array(count[order]),
        "doc_freq": pa.array(doc_freq[order]),
    }


def _join(sorted_vocab: pa.Array, columns) -> pa.Array:
    """The n-gram strings of rank columns: their tokens joined by one space."""
    words = [sorted_vocab.take(pa.array(column)) for column in columns]
    return pc.binary_join_element_wise(*words, " ") if len(words) > 1 else words[0]


def _order(columns, count: np.ndarray, sorted_vocab: pa.Array) -> np.ndarray:
    """Row order by count desc, then ngram. Joined strings compare like their token tuples when
    every token is non-empty and has no character <= " " (the tokenizers split on
    whitespace), so the tie order comes from the token ranks (one argsort of count and packed
    key together where they fit in 64 bits); otherwise from the strings."""
    if pc.any(pc.match_substring_regex(sorted_vocab, "^$|[\\x00- ]")).as_py():
        by_ngram = np.argsort(
            _join(sorted_vocab, columns).to_numpy(zero_copy_only=False), kind="stable"
        )
        return by_ngram[np.argsort(-count[by_ngram], kind="stable")]
    key, ordered = _keys(columns, len(sorted_vocab))
    most, span = int(count.max(initial=0)), len(sorted_vocab) ** len(columns)
    if ordered and (most + 1) * span < 2**63:
        return np.argsort((most - count) * span + key)  # distinct keys: no ties to break
    return np.lexsort(list(reversed(columns)) + [-count])


# the ngram table's column types (a one-row table: an empty object column has no type)
TABLE_LIKE = pd.DataFrame(
    {
        "ngram": pd.Series(["a"], dtype=object),
        "count": np.ones(1, np.int64),
        "doc_freq": np.ones(1, np.int64),
    }
)


def count_ngrams(token_lists, n: int, chunk_tokens: int = CHUNK_TOKENS) -> pd.DataFrame:
    """ngram_columns as a DataFrame (ngram as Python strings)."""
    columns = ngram_columns(token_lists, n, chunk_tokens)
    return pd.DataFrame(
        {
            "ngram": pd.Series(columns["ngram"].to_numpy(zero_copy_only=False), dtype=object),
            "count": columns["count"].to_numpy(),
            "doc_freq": columns["doc_freq"].to_numpy(),
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
    columns = ngram_columns(train_response_tokens(tokens, corpus), args.n)
    write_arrow_parquet(columns, TABLE_LIKE, args.out)
    log.info("%d distinct %d-grams -> %s", len(columns["ngram"]), args.n, args.out)


if __name__ == "__main__":
    run(main)
