"""Top-k most similar train prompts for every train prompt (ISAAC step 2).

The query's own row is always first (also when identical prompts exist), then neighbours by
descending cosine; equal similarities are ordered by row index, and rows tied at the k-th place
are admitted by row index too, so the result does not depend on the sort algorithm.

Indexes (``neighbours.index``):
- ``exact``: chunked matrix products against every prompt (quadratic; the reference result).
- ``hnsw``: a faiss HNSW graph (inner product, M = 32), built on one thread so that its random
  levels and links, and hence the result, are deterministic; searched on all threads with
  efSearch = 2k. Approximate: recall@k against exact is in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from isaac.cli import run
from isaac.embed import load_embeddings
from isaac.io import InputError, write_arrow_parquet
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.neighbours")


INDEXES = ("exact", "hnsw")
HNSW_M = 32  # links per node: recall 0.99 at k = 150 on DiaSafety (docs/benchmarks.md)
HNSW_EF_CONSTRUCTION = 80


@dataclass(frozen=True)
class NeighboursConfig:
    k: int
    index: str


def _top_k_rows(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row, by descending value then index (so ties
    at the boundary go to lower indices).

    No full partition: columns form g groups {j, j + g, j + 2g, ...} (g >= k, a few times k),
    and the k-th largest group maximum of a row bounds its k-th largest value from below, so
    only the members of groups reaching it (and the < g leftover columns) are sorted.
    """
    n_rows, n = sims.shape
    if k >= n:
        chosen = np.broadcast_to(np.arange(n), sims.shape)
        values = np.take_along_axis(sims, chosen, axis=1)
        order = np.lexsort((chosen, -values), axis=1)
        return np.take_along_axis(chosen, order, axis=1)
    per_group = max(1, n // (8 * k))
    groups = n // per_group
    maxima = sims[:, : groups * per_group].reshape(n_rows, per_group, groups).max(axis=1)
    bound = np.partition(maxima, groups - k, axis=1)[:, groups - k]
    rows, first = np.nonzero(maxima >= bound[:, None])
    cols = (first[:, None] + groups * np.arange(per_group)).ravel()
    rows = np.repeat(rows, per_group)
    leftover = np.arange(groups * per_group, n)
    rows = np.concatenate([rows, np.repeat(np.arange(n_rows), len(leftover))])
    cols = np.concatenate([cols, np.tile(leftover, n_rows)])
    values = sims.ravel().take(rows * n + cols)
    keep = np.flatnonzero(values >= bound[rows])
    rows, cols = _sort_by_row_value_index(rows[keep], cols[keep], values[keep], n_rows, n)
    starts = np.searchsorted(rows, np.arange(n_rows))
    return cols[starts[:, None] + np.arange(k)]


def _sort_by_row_value_index(rows, cols, values, n_rows: int, n_cols: int):
    """(rows, cols) ordered by row, then descending value, then column: one sort of packed
    64-bit keys (row | order-preserving bits of -value | column) where they fit, else lexsort."""
    row_bits, col_bits = int(n_rows - 1).bit_length(), int(n_cols - 1).bit_length()
    if row_bits + 32 + col_bits > 64:
        order = np.lexsort((cols, -values, rows))
        return rows[order], cols[order]
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)  # -0 -> +0
    ascending = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(1 << 31))
    keys = (
        (rows.astype(np.uint64) << np.uint64(32 + col_bits))
        | ((~ascending).astype(np.uint64) << np.uint64(col_bits))
        | cols.astype(np.uint64)
    )
    keys.sort()
    return (keys >> np.uint64(32 + col_bits)).astype(np.int64), (
        keys & np.uint64((1 << col_bits) - 1)
    ).astype(np.int64)


def top_k_neighbours(
    vectors: np.ndarray, k: int, chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities), each (n, min(k, n)); column 0 is the query itself.

    Chunked matrix products keep memory at chunk_size x n floats.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = max(1, min(int(k), n))
    indices = np.empty((n, k), dtype=np.int64)
    sims_out = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sims = vectors[start:stop] @ vectors.T
        rows = np.arange(stop - start)
        own = sims[rows, start + rows].copy()
        sims[rows, start + rows] = np.inf  # the query first, whatever its duplicates score
        idx = _top_k_rows(sims, k)
        sims[rows, start + rows] = own
        indices[start:stop] = idx
        sims_out[start:stop] = np.take_along_axis(sims, idx, axis=1)
    return indices, sims_out


def hnsw_neighbours(vectors: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top_k_neighbours, same layout (the query first, then the others by descending
    similarity and index) from a faiss HNSW search of k + 1 candidates per query."""
    import faiss  # only this index needs it

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    k = max(1, min(int(k), n))
    index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    faiss.omp_set_num_threads(1)  # parallel insertion would make the graph depend on timing
    index.add(vectors)
    faiss.omp_set_num_threads(max(1, int(threads)))
    index.hnsw.efSearch = 2 * k
    found_sims, found = index.search(vectors, k + 1)
    rows = np.arange(n)[:, None]
    others = (found != rows) & (found >= 0)  # faiss pads with -1 when it finds fewer
    order = np.lexsort(
        (np.where(others, found, n), -np.where(others, found_sims, -np.inf)), axis=1
    )[:, : k - 1]
    if not np.take_along_axis(others, order, axis=1).all():
        raise ValueError("the HNSW search returned fewer than k neighbours; use index exact")
    indices = np.concatenate([rows, np.take_along_axis(found, order, axis=1)], axis=1)
    own = np.einsum("ij,ij->i", vectors, vectors)[:, None]
    sims = np.concatenate([own, np.take_along_axis(found_sims, order, axis=1)], axis=1)
    return indices.astype(np.int64), sims.astype(np.float32)


def neighbours_table(ids: np.ndarray, indices: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
    """The neighbours/{encoder}-k{k}.parquet table (id, neighbour_ids, similarities)."""
    ids = np.asarray(ids, dtype=str)
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object),
            "neighbour_ids": pd.Series(list(ids[indices]), dtype=object),
            "similarities": pd.Series(list(np.asarray(sims, dtype=np.float32)), dtype=object),
        }
    )


def write_neighbours(ids: np.ndarray, indices: np.ndarray, sims: np.ndarray, path) -> None:
    """Write neighbours_table, built in Arrow (the same bytes, without a Python object per
    neighbour)."""
    ids = np.asarray(ids, dtype=str)
    n, k = indices.shape
    id_array = pa.array(ids, type=pa.string())
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    columns = {
        "id": id_array,
        "neighbour_ids": pa.ListArray.from_arrays(
            offsets, id_array.take(pa.array(indices.ravel()))
        ),
        "similarities": pa.ListArray.from_arrays(
            offsets, pa.array(np.asarray(sims, dtype=np.float32).ravel())
        ),
    }
    like = neighbours_table(ids[:1], np.zeros((1, k), dtype=np.int64), sims[:1])  # types only
    write_arrow_parquet(columns, like, path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True, help="embeddings/{encoder}.npz")
    add_config_argument(parser, NeighboursConfig)
    parser.add_argument("--threads", type=int, default=1, help="HNSW search threads")
    parser.add_argument("--out", required=True, help="neighbours/{encoder}-k{k}.parquet")
    args = parser.parse_args(argv)
    config = parse(NeighboursConfig, args.config)
    if config.index not in INDEXES:
        raise InputError(
            f"--config: index must be one of {', '.join(INDEXES)}, not {config.index!r}"
        )
    ids, prompts, _ = load_embeddings(args.embeddings)
    if config.k > len(ids):
        raise InputError(
            f"neighbours.k: {config.k} is more than the {len(ids)} train rows of "
            f"{args.embeddings}; a pool cannot hold more prompts than the split"
        )
    if config.index == "hnsw":
        indices, sims = hnsw_neighbours(prompts, config.k, args.threads)
    else:
        indices, sims = top_k_neighbours(prompts, config.k)
    write_neighbours(ids, indices, sims, args.out)
    log.info("wrote %s: %d queries x %d neighbours", args.out, *indices.shape)


if __name__ == "__main__":
    run(main)
