"""Assess every candidate pool (ISAAC step 3): split it into groups whose size says how typical
a response is.

A pool is the responses of a query's neighbour prompts (pool mode ``neighbours``; the query
itself first) or of the prompt's own sampled responses (pool mode ``prompt``: rows sharing the
corpus ``prompt_group`` value, the query first, then the others in corpus order). With
``--global-pool`` the stage groups one pool instead, every train row (pool mode ``global``,
method global), with the eps the configured pools' groups used.

Assessors (each gives one group id per pool member; ids are canonical: numbered 0, 1, ... by
first appearance in pool order):

- ``dbscan``: DBSCAN(eps, min_samples=1, Euclidean) on the pool's response vectors. With
  min_samples=1 every point is a core point, so DBSCAN's clusters are exactly the connected
  components of the graph "distance <= eps". That lets all pools be done at once: batched
  pairwise distances (one batched matrix product), a block-diagonal graph, one call of
  ``scipy.sparse.csgraph.connected_components``. ``dbscan_groups_reference`` is the
  per-pool sklearn loop it replaces (kept for tests and the benchmark).
- ``fuzzy``: single-linkage on rapidfuzz ``token_set_ratio`` >= threshold (strings processed
  with ``rapidfuzz.utils.default_process``: lower case, non-alphanumerics to spaces). Scores
  are computed once per pair of distinct train strings (``process.cdist``), not per pool.
- ``exact``: identical ``isaac.text.normalise`` strings.
- ``likelihood``: exact groups, each member weighted by its n-gram LM likelihood (see
  ``likelihood_weights``); a ``weight`` column (list<float>) is added and the sampler uses
  the summed weight of a group as its size.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from isaac.cli import optional, run
from isaac.embed import load_embeddings
from isaac.io import InputError, read_table, train_rows, write_json
from isaac.pools import (
    GLOBAL_POOL,
    Pools,
    global_pool,
    prompt_pools,
    read_groups_provenance,
    read_neighbour_pools,
    write_groups,
)
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.assess")

ASSESSORS = ("dbscan", "fuzzy", "exact", "likelihood")
POOL_MODES = ("neighbours", "prompt")


# --------------------------------------------------------------------------- canonical ids


def canonical_group_ids(group_ids: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Renumber group ids per pool by first appearance (flat members in pool order).

    group_ids: any integer id per flat member; rows: its pool number (non-decreasing).
    """
    group_ids = np.asarray(group_ids, dtype=np.int64)
    if len(group_ids) == 0:
        return group_ids
    lo = group_ids.min()
    span = int(group_ids.max() - lo) + 1
    key = rows.astype(np.int64) * span + (group_ids - lo)
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))  # flat order = row, then position
    per_row = np.bincount(uniq // span, minlength=n_rows)
    row_start = np.cumsum(per_row) - per_row
    return (rank - row_start[uniq // span])[inverse.ravel()]


def _components(adjacency: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Connected components of a batch of pool graphs (B, L, L) -> the valid members' group ids.

    One block-diagonal sparse graph, one connected_components call.
    """
    b, width, _ = adjacency.shape
    adjacency = adjacency & valid[:, :, None] & valid[:, None, :]
    q, i, j = np.nonzero(adjacency)
    n = b * width
    graph = coo_matrix(
        (np.ones(len(q), dtype=np.int8), (q * width + i, q * width + j)), shape=(n, n)
    )
    _, group_ids = connected_components(graph, directed=False)
    return group_ids.reshape(b, width)[valid]


# --------------------------------------------------------------------------- assessors


def _eps_pairs(vectors: np.ndarray, sq_norms: np.ndarray, eps2: float, chunk: int = 512):
    """The pairs (lower rows, higher rows) at distance <= eps, one block of rows at a time,
    each pair once, self-pairs left out.

    Each pair is computed once (row blocks against the rows from the block on) with float32
    products; only pairs whose float32 distance lies within its rounding bound of eps are
    recomputed in float64, so the pairs are the float64 ones at half the work of a float64 Gram.
    """
    n, dim = vectors.shape
    single = vectors.astype(np.float32)
    single_norms = sq_norms.astype(np.float32)
    # |float32 d^2 - exact d^2| <= 2 (dim + 2) u max||x||^2 (products, sums, rounding of x)
    margin = 4.0 * (dim + 4) * float(np.finfo(np.float32).eps) * float(sq_norms.max(initial=0.0))
    for start in range(0, n, chunk):
        d2 = single[start : start + chunk] @ single[start:].T  # in place: no temporaries
        d2 *= -2.0
        d2 += single_norms[start : start + chunk, None]
        d2 += single_norms[None, start:]
        r, c = np.nonzero(d2 <= eps2 + margin)
        keep = c > r  # each pair once, no self-pairs
        r, c = r[keep], c[keep] + start
        unsure = np.flatnonzero(d2[r, c - start] > eps2 - margin)
        if len(unsure):
            ur, uc = r[unsure] + start, c[unsure]
            exact = (
                sq_norms[ur] + sq_norms[uc] - 2.0 * np.einsum("ij,ij->i", vectors[ur], vectors[uc])
            )
            keep = np.ones(len(r), dtype=bool)
            keep[unsure] = exact <= eps2
            r, c = r[keep], c[keep]
        yield r + start, c


def _eps_graph(
    vectors: np.ndarray, sq_norms: np.ndarray, eps2: float, max_edges: int, chunk: int = 512
):
    """CSR (indptr, indices) of "distance <= eps" over all rows, each pair once (from its lower
    row to its higher), self-pairs left out; None when it would hold more than max_edges / 2
    pairs."""
    n = len(vectors)
    upper_rows, upper_cols, total = [], [], 0
    for r, c in _eps_pairs(vectors, sq_norms, eps2, chunk):
        upper_rows.append(r.astype(np.int32))
        upper_cols.append(c.astype(np.int32))
        total += 2 * len(r)
        if total > max_edges:
            return None
    rows = np.concatenate(upper_rows)  # non-decreasing: blocks and np.nonzero go by row
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    return indptr, np.concatenate(upper_cols)


def _streamed_components(n: int, pairs) -> np.ndarray:
    """Connected components of a graph on n nodes whose edges come in blocks of (rows, cols):
    each block is merged into the components so far, so memory grows with a block and n, never
    with the whole graph (one pool of every train row: method global)."""
    labels = np.arange(n)
    for r, c in pairs:
        graph = coo_matrix((np.ones(len(r), dtype=np.int8), (labels[r], labels[c])), shape=(n, n))
        labels = connected_components(graph, directed=False)[1][labels]
    return labels


POSITION_CELLS = 8_000_000  # pools x rows of one batch's position table (32 MB of int32)
LOOKUPS = 5_000_000  # neighbour look-ups per batch


def _induced_components(graph, pools: Pools) -> np.ndarray:
    """Connected components of the eps-graph induced on every pool, one group id per flat
    member (distinct across pools; not yet canonical).

    Members without an eps-neighbour anywhere (most of them at useful eps) keep their own flat
    position as group id. For a batch of pools, a dense (pool, row) table numbers the other
    members in their pools, so each global neighbour of a member is found in the member's own
    pool by one look-up; one connected_components call over those members groups the batch,
    and each component takes the flat position of one of its members.
    """
    indptr, indices = graph
    n = len(indptr) - 1
    higher = np.diff(indptr)  # links to higher rows
    member_links = higher[pools.index]
    member_linked = (higher + np.bincount(indices, minlength=n) > 0)[pools.index]
    rows = pools.rows()
    out = np.arange(len(pools.index))
    per_batch = max(1, POSITION_CELLS // max(n, 1))
    position = np.zeros(min(per_batch, len(pools)) * n, dtype=np.int32)
    cost = np.cumsum(np.add.reduceat(member_links, pools.offsets[:-1]) if len(pools) else [])
    start = 0
    while start < len(pools):
        done = cost[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cost, done + LOOKUPS, side="right")))
        stop = min(stop, start + per_batch, len(pools))
        lo, hi = pools.offsets[start], pools.offsets[stop]
        linked = np.flatnonzero(member_linked[lo:hi])  # flat positions within the batch
        members, pool = pools.index[lo:hi][linked], rows[lo:hi][linked] - start
        cells = pool * n + members
        position.put(cells, np.arange(1, len(linked) + 1))  # 1 + number among the linked
        links = higher[members]
        first = np.repeat(indptr[members] - (np.cumsum(links) - links), links)
        neighbour = indices[first + np.arange(len(first))]
        dst = position.take(np.repeat(pool * n, links) + neighbour) - 1
        position.put(cells, 0)
        found = np.flatnonzero(dst >= 0)
        adjacency = coo_matrix(
            (
                np.ones(len(found), dtype=np.int8),
                (np.repeat(np.arange(len(linked)), links)[found], dst[found]),
            ),
            shape=(len(linked), len(linked)),
        )
        component = connected_components(adjacency, directed=False)[1]
        representative = np.empty(len(linked), dtype=np.int64)
        representative[component] = linked  # some member of each component
        out[lo + linked] = lo + representative[component]
        start = stop
    return out


def dbscan_groups(
    vectors: np.ndarray,
    pools: Pools,
    eps: float,
    batch_size: int = 256,
    max_edges: int = 20_000_000,
) -> np.ndarray:
    """Canonical DBSCAN(eps, min_samples=1) group ids of every pool, flat in pool order.

    Distances in float64 from the Gram matrix (||a||^2 + ||b||^2 - 2ab), like sklearn's
    Euclidean path; a pair is linked when distance <= eps (sklearn's radius test). Pools
    overlap heavily (k = 150 neighbours of 9k rows cover each pair many times), so the
    eps-graph of all rows is built once (sparse at useful eps) and each pool's graph is its
    induced subgraph; one connected_components call groups a whole batch of pools. When that
    graph would exceed ``max_edges`` pairs or the number of pool members (a dense graph, eps
    large for the encoder), or would cost more than the pools' own pairs (n much larger than
    k^2, as on large corpora), each batch of pools gets its own batched distance computation
    instead (same result). A single pool (the whole train split, for method global) is its
    own eps-graph, whose components are merged block by block: memory grows with n, not n^2.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    eps2 = float(eps) ** 2
    if len(pools) == 1:  # one pool (the whole train split): its eps-graph's components
        members = pools.index
        pairs = _eps_pairs(vectors[members], sq_norms[members], eps2)
        return canonical_group_ids(_streamed_components(len(members), pairs), pools.rows(), 1)
    # the eps-graph costs n^2 / 2 pair products, the per-batch path sum(L^2) slower ones; on
    # large corpora with small pools (n >> k^2) the per-batch path is the cheaper one
    pair_products = len(vectors) ** 2 / 2
    global_graph = max_edges > 0 and pair_products <= 4 * float(np.sum(pools.lengths**2.0))
    # a graph with more pairs than the pools have members is dense: its look-ups would cost
    # more than each pool's own distances
    edge_budget = min(max_edges, len(pools.index))
    graph = _eps_graph(vectors, sq_norms, eps2, edge_budget) if global_graph else None
    if graph is not None:
        return canonical_group_ids(_induced_components(graph, pools), pools.rows(), len(pools))
    out = np.empty(len(pools.index), dtype=np.int64)
    for start in range(0, len(pools), batch_size):
        stop = min(start + batch_size, len(pools))
        members, valid = pools.padded(start, stop)
        x = vectors[members]
        n2 = sq_norms[members]
        d2 = n2[:, :, None] + n2[:, None, :] - 2.0 * np.matmul(x, x.transpose(0, 2, 1))
        group_ids = _components(d2 <= eps2, valid)
        out[pools.offsets[start] : pools.offsets[stop]] = group_ids  # distinct within each pool
    return canonical_group_ids(out, pools.rows(), len(pools))


def dbscan_groups_reference(vectors: np.ndarray, pools: Pools, eps: float) -> np.ndarray:
    """The straightforward version: one sklearn DBSCAN per pool (the reference's approach)."""
    from sklearn.cluster import DBSCAN  # only tests and benchmarks run it; slow to import

    out = []
    for q in range(len(pools)):
        members = pools.index[pools.offsets[q] : pools.offsets[q + 1]]
        dbscan = DBSCAN(eps=eps, min_samples=1, metric="euclidean")
        out.append(dbscan.fit_predict(vectors[members]))
    flat = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return canonical_group_ids(flat, pools.rows(), len(pools))


def _fuzzy_links(strings: list[str], threshold: float, workers: int):
    """Blocks of (rows, linked columns): token_set_ratio >= threshold among `strings`, scored
    a block of rows against all at a time."""
    n = len(strings)
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n, chunk):
        scores = process.cdist(
            strings[start : start + chunk],
            strings,
            scorer=fuzz.token_set_ratio,
            dtype=np.float32,
            workers=workers,
        )
        r, c = np.nonzero(scores >= threshold)
        yield r + start, c


def _fuzzy_adjacency_global(uniques: list[str], threshold: float, workers: int) -> np.ndarray:
    """Boolean "score >= threshold" matrix over distinct processed strings (computed in chunks)."""
    adjacency = np.zeros((len(uniques), len(uniques)), dtype=bool)
    for r, c in _fuzzy_links(uniques, threshold, workers):
        adjacency[r, c] = True
    return adjacency


def fuzzy_groups(
    responses: Sequence[str],
    pools: Pools,
    threshold: float,
    workers: int = 1,
    max_global: int = 15_000,
    batch_size: int = 256,
) -> np.ndarray:
    """Single-linkage groups of token_set_ratio >= threshold, canonical, flat in pool order.

    With at most ``max_global`` distinct strings every pair is scored once (pools overlap a
    lot); above it each pool is scored on its own (same result, less memory). A single pool
    (the whole train split, for method global) is scored block by block and its components
    merged as they come, without an n x n matrix.
    """
    processed = [default_process(s) for s in responses]
    codes, uniques = pd.factorize(pd.Series(processed, dtype=object), sort=False)
    uniques = list(uniques)
    if len(pools) == 1:  # one pool (the whole train split): components over its strings
        pool_codes, pool_strings = pd.factorize(codes[pools.index], sort=False)
        strings = [uniques[code] for code in pool_strings]
        labels = _streamed_components(len(strings), _fuzzy_links(strings, threshold, workers))
        return canonical_group_ids(labels[pool_codes], pools.rows(), 1)
    global_adj = None
    if len(uniques) <= max_global:
        global_adj = _fuzzy_adjacency_global(uniques, threshold, workers)
    out = np.empty(len(pools.index), dtype=np.int64)
    for start in range(0, len(pools), batch_size):
        stop = min(start + batch_size, len(pools))
        members, valid = pools.padded(start, stop)
        c = codes[members]
        if global_adj is not None:
            adjacency = global_adj[c[:, :, None], c[:, None, :]]
        else:
            adjacency = np.zeros(c.shape + (c.shape[1],), dtype=bool)
            for b in range(len(c)):
                strings = [uniques[x] for x in c[b][valid[b]]]
                scores = process.cdist(
                    strings, strings, scorer=fuzz.token_set_ratio, workers=workers
                )
                n_valid = len(strings)
                adjacency[b, :n_valid, :n_valid] = scores >= threshold
        adjacency |= c[:, :, None] == c[:, None, :]  # equal strings (also empty ones) always link
        group_ids = _components(adjacency, valid)
        out[pools.offsets[start] : pools.offsets[stop]] = group_ids  # distinct within each pool
    return canonical_group_ids(out, pools.rows(), len(pools))


def exact_groups(responses: Sequence[str], pools: Pools) -> np.ndarray:
    """Groups of identical normalised strings, canonical, flat in pool order."""
    codes, _ = pd.factorize(pd.Series([normalise(s) for s in responses], dtype=object))
    return canonical_group_ids(codes[pools.index], pools.rows(), len(pools))


def likelihood_weights(loglik: np.ndarray, pools: Pools) -> np.ndarray:
    """Per-member weight from the n-gram LM: how typical a response is in corpus terms.

    w_j = exp(loglik_j - max_pool loglik) (loglik = mean log-probability per token, so the
    weight is a per-token likelihood ratio to the pool's most likely response), rescaled so a
    pool's weights sum to its size: a group's summed weight is then on the same scale as a
    member count, and the sampler's temperature means the same as for the other assessors.
    """
    ll = np.asarray(loglik, dtype=np.float64)[pools.index]
    rows = pools.rows()
    pool_max = np.full(len(pools), -np.inf)
    np.maximum.at(pool_max, rows, ll)
    w = np.exp(ll - pool_max[rows])
    total = np.bincount(rows, weights=w, minlength=len(pools))
    return w * pools.lengths[rows] / total[rows]


def assess(
    config: AssessConfig,
    train: pd.DataFrame,
    pools: Pools,
    vectors: np.ndarray | None = None,
    loglik: np.ndarray | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(flat canonical group ids, flat weights or None) for the configured assessor; dbscan
    reads its radius with `dbscan_eps`."""
    if config.assessor == "dbscan":
        return dbscan_groups(vectors, pools, dbscan_eps(config, vectors, pools)), None
    if config.assessor == "fuzzy":
        if config.fuzzy_threshold is None:
            raise InputError("assessor fuzzy needs assess.fuzzy_threshold")
        responses = train["response"].tolist()
        return fuzzy_groups(responses, pools, config.fuzzy_threshold, threads), None
    group_ids = exact_groups(train["response"].tolist(), pools)
    if config.assessor == "exact":
        return group_ids, None
    if config.assessor == "likelihood":
        return group_ids, likelihood_weights(loglik, pools)
    raise InputError(f"unknown assessor {config.assessor!r} (one of {', '.join(ASSESSORS)})")


@dataclass(frozen=True)
class AssessConfig:
    """The assess section; for dbscan a fixed eps or the eps_quantile rule (the other null),
    fuzzy_threshold only for fuzzy (else null). The global pool's job reads neither pool nor
    eps: its radius is the one the pools' groups used."""

    assessor: str
    pool: str | None
    eps: float | None
    eps_quantile: float | None
    fuzzy_threshold: float | None


EPS_RULE_POOLS = 1000  # pools drawn (seed 0) to estimate the eps rule's quantile


def nearest_distinct_distances(
    vectors: np.ndarray, pools: Pools, max_pools: int = EPS_RULE_POOLS, seed: int = 0
) -> np.ndarray:
    """Per member of up to `max_pools` pools (drawn with `seed`): the Euclidean distance to the
    nearest member of its pool with a different vector (exact duplicates are skipped, so repeated
    responses do not pull the radius to 0). Members without one are left out."""
    n = len(pools)
    chosen = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_pools), replace=False))
    out = []
    for q in chosen:
        members = vectors[pools.index[pools.offsets[q] : pools.offsets[q + 1]]].astype(np.float64)
        sq = np.einsum("ij,ij->i", members, members)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * members @ members.T, 0.0)
        d2[d2 <= 1e-12] = np.inf  # itself and exact duplicates
        nearest = d2.min(axis=1)
        out.append(np.sqrt(nearest[np.isfinite(nearest)]))
    return np.concatenate(out) if out else np.zeros(0)


def eps_from_quantile(vectors: np.ndarray, pools: Pools, quantile: float) -> float:
    """The label-free DBSCAN radius: the `quantile` of the nearest-distinct-member distances, so
    that share of responses has a distinct neighbour within eps, whatever the encoder's scale."""
    if not 0 < quantile < 1:
        raise InputError(f"assess.eps_quantile: {quantile} is not in (0, 1)")
    distances = nearest_distinct_distances(vectors, pools)
    if distances.size == 0:
        raise InputError("assess.eps_quantile: no pool holds two distinct responses")
    return float(np.quantile(distances, quantile))


def dbscan_eps(config: AssessConfig, vectors: np.ndarray, pools: Pools) -> float:
    """The configured eps, or the eps_quantile rule's value on these pools."""
    if (config.eps is None) == (config.eps_quantile is None):
        raise InputError("assessor dbscan needs assess.eps or assess.eps_quantile (exactly one)")
    if config.eps is not None:
        return float(config.eps)
    return eps_from_quantile(vectors, pools, config.eps_quantile)


def read_pools(pool: str, train: pd.DataFrame, neighbours_path, corpus_path) -> Pools:
    """The pools of every train row, from the neighbours table or the corpus's prompt_group
    column."""
    if pool not in POOL_MODES:
        raise InputError(f"--config: pool must be one of {', '.join(POOL_MODES)}, not {pool!r}")
    if pool == "neighbours":
        if not neighbours_path:
            raise InputError("pool neighbours needs --neighbours")
        return read_neighbour_pools(neighbours_path, train["id"].to_numpy())
    if "prompt_group" not in train.columns or train["prompt_group"].isna().all():
        raise InputError(
            f"{corpus_path}: pool mode 'prompt' needs a non-empty 'prompt_group' column"
        )
    return prompt_pools(train["prompt_group"])


def read_response_vectors(path, train_ids: np.ndarray, corpus_path) -> np.ndarray:
    """Response vectors of the train rows, checked to be in the corpus's row order."""
    if not path:
        raise InputError("assessor dbscan needs --embeddings")
    emb_ids, _, vectors = load_embeddings(path)
    if not np.array_equal(emb_ids, train_ids):
        raise InputError(f"{path}: ids differ from the train rows of {corpus_path}")
    return vectors


def read_loglik(path, train_ids: np.ndarray) -> np.ndarray:
    """Leave-one-out log-likelihood of every train row's response, in train row order."""
    if not path:
        raise InputError("assessor likelihood needs --likelihood")
    table = read_table(path, ["id", "loglik"])
    loglik_by_id = pd.Series(table["loglik"].to_numpy(float), index=table["id"].astype(str))
    missing = ~pd.Index(train_ids).isin(loglik_by_id.index)
    if missing.any():
        raise InputError(f"{path}: no row for train id {train_ids[missing][0]!r}")
    loglik = loglik_by_id.loc[train_ids].to_numpy()
    if not np.all(np.isfinite(loglik)):
        raise InputError(f"{path}: loglik must be finite")
    return loglik


def groups_provenance(config: AssessConfig, pools: Pools, embeddings_path) -> dict:
    """What made the groups, as the statistics of every target drawn from them record it: the
    assessor, the pool mode, the encoder (named by its embeddings file, embeddings/{encoder}.npz)
    and k of the neighbour pools, and the eps dbscan used (after the eps rule)."""
    neighbours = config.pool == "neighbours"
    return {
        "assessor": config.assessor,
        "pool": config.pool,
        "encoder": Path(embeddings_path).stem if embeddings_path else None,
        "k": int(pools.lengths.max(initial=0)) if neighbours else None,
        "eps": config.eps,
    }


def groups_summary(pools: Pools, group_ids: np.ndarray) -> dict:
    """Pool and group sizes of the groups table."""
    n_groups = np.maximum.reduceat(group_ids, pools.offsets[:-1]) + 1 if len(pools) else np.zeros(1)
    return {
        "pools": len(pools),
        "mean_pool_size": float(pools.lengths.mean()) if len(pools) else 0.0,
        "mean_groups": float(n_groups.mean()),
        "singleton_only_pool_share": float(np.mean(n_groups == pools.lengths)),
    }


def global_config(config: AssessConfig, groups_stats) -> AssessConfig:
    """The settings of the global pool's groups: the configured assessor with the eps that the
    pools' groups used (recorded in their statistics), so that the pool is the only
    difference."""
    recorded = read_groups_provenance(groups_stats)
    if recorded["assessor"] != config.assessor:
        raise InputError(
            f"{groups_stats}: groups of assessor {recorded['assessor']}, not {config.assessor}"
        )
    if config.assessor == "dbscan" and recorded["eps"] is None:
        raise InputError(f"{groups_stats}: no eps recorded for the dbscan groups")
    return replace(config, pool=GLOBAL_POOL, eps=recorded["eps"], eps_quantile=None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument(
        "--neighbours",
        type=optional(str),
        help="neighbours/{encoder}-k{k}.parquet (pool neighbours)",
    )
    parser.add_argument(
        "--global-pool",
        type=optional(str),
        metavar="GROUPS_STATS",
        help="group one pool of every train row (method global) instead of the configured "
        "pools, with the eps of the groups whose statistics these are (groups/{assessor}.json)",
    )
    parser.add_argument(
        "--embeddings",
        type=optional(str),
        help="embeddings/{encoder}.npz (assessor dbscan reads it; neighbour pools come from it)",
    )
    parser.add_argument(
        "--likelihood", type=optional(str), help="likelihood.parquet (assessor likelihood)"
    )
    add_config_argument(parser, AssessConfig)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="groups/{assessor}[-global].parquet")
    parser.add_argument(
        "--stats",
        required=True,
        help="groups/{assessor}[-global].json (what made the groups, pool sizes)",
    )
    args = parser.parse_args(argv)
    config = parse(AssessConfig, args.config)

    train = train_rows(args.corpus)
    train_ids = train["id"].to_numpy()
    if args.global_pool:
        config = global_config(config, args.global_pool)
        pools = global_pool(len(train))
    else:
        pools = read_pools(config.pool, train, args.neighbours, args.corpus)
    vectors = loglik = None
    if config.assessor == "dbscan":
        vectors = read_response_vectors(args.embeddings, train_ids, args.corpus)
        # resolved once, so the radius the groups used is the one recorded
        config = replace(config, eps=dbscan_eps(config, vectors, pools), eps_quantile=None)
    if config.assessor == "likelihood":
        loglik = read_loglik(args.likelihood, train_ids)
    group_ids, weights = assess(config, train, pools, vectors, loglik, args.threads)
    write_groups(train_ids, pools, group_ids, weights, args.out)
    stats = {
        **groups_provenance(config, pools, args.embeddings),
        **groups_summary(pools, group_ids),
    }
    write_json(stats, args.stats)
    log.info("wrote %s: %s", args.out, stats)


if __name__ == "__main__":
    run(main)
