"""Top-k most similar train prompts for every train prompt (ISAAC step 2), in one vectorised pass.

The query's own row is always first (also when identical prompts exist), then neighbours by
descending cosine; equal similarities are ordered by row index, and rows tied at the k-th place
are admitted by row index too, so the result does not depend on the sort algorithm.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.embed import load_embeddings
from isaac.io import InputError, write_parquet
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.neighbours")


@dataclass(frozen=True)
class NeighboursConfig:
    k: int


def _top_k_rows(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row; ties at the boundary go to lower indices."""
    n = sims.shape[1]
    if k >= n:
        chosen = np.broadcast_to(np.arange(n), sims.shape)
    else:
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1 : k]  # k-th largest value per row
        above = sims > kth
        need = k - above.sum(axis=1, keepdims=True)
        at = sims == kth
        take = above | (at & (np.cumsum(at, axis=1) <= need))
        chosen = np.nonzero(take)[1].reshape(len(sims), k)  # row-major: ascending index per row
    values = np.take_along_axis(sims, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=1)  # descending similarity, then index
    return np.take_along_axis(chosen, order, axis=1)


def top_k_neighbours(
    vectors: np.ndarray, k: int, chunk_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities), each (n, min(k, n)); column 0 is the query itself.

    Chunked matrix products keep memory at chunk_size x n floats.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True, help="embeddings/{encoder}.npz")
    add_config_argument(parser, NeighboursConfig)
    parser.add_argument("--out", required=True, help="neighbours/{encoder}-k{k}.parquet")
    args = parser.parse_args(argv)
    config = parse(NeighboursConfig, args.config)
    ids, prompts, _ = load_embeddings(args.embeddings)
    if config.k > len(ids):
        raise InputError(f"neighbours.k: {config.k} is more than the {len(ids)} train rows of "
                         f"{args.embeddings}; a pool cannot hold more prompts than the split")
    indices, sims = top_k_neighbours(prompts, config.k)
    write_parquet(neighbours_table(ids, indices, sims), args.out)
    log.info("wrote %s: %d queries x %d neighbours", args.out, *indices.shape)


if __name__ == "__main__":
    run(main)
