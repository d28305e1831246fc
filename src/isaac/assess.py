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
  components of the graph "distance <= eps". That lets all pools be done at once: the
  eps-graph of all responses (one pass of float32 matrix products), each pool's induced
  subgraph found by table look-ups, one ``scipy.sparse.csgraph.connected_components`` call per
  batch of pools (``dbscan_groups``). ``dbscan_groups_reference`` is the per-pool sklearn loop
  it replaces (kept for tests and the benchmark).
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


def _rounding_margin(dim: int, max_sq_norm: float, dtype) -> float:
    """How far two computations of ||a||^2 + ||b||^2 - 2ab in `dtype` can lie apart, in any
    order of summation and with the inputs rounded to `dtype`: each lies within
    (2 dim + 8) eps max||x||^2 of the exact value."""
    return 4.0 * (dim + 4) * float(np.finfo(dtype).eps) * max_sq_norm


def _eps_pairs(vectors: np.ndarray, sq_norms: np.ndarray, eps2: float, chunk: int = 512):
    """Blocks ((rows, cols), (rows, cols, d2)) of the pairs that may lie within eps, lower row
    first, each pair once, self-pairs left out, one block of rows at a time: the pairs surely
    within eps, then the pairs whose float32 distance lies within its rounding bound of eps,
    with d2 their float64 squared distance (rows and cols int32).

    Each pair is computed once (row blocks against the rows from the block on) with float32
    products, so the callers decide in float64 at half the work of a float64 Gram.
    """
    n, dim = vectors.shape
    single = vectors.astype(np.float32)
    norms, ones = sq_norms.astype(np.float32)[:, None], np.ones((n, 1), dtype=np.float32)
    # [a, ||a||^2, 1] . [-2b, 1, ||b||^2] = ||a||^2 + ||b||^2 - 2ab: one product per block
    left, right = np.hstack([single, norms, ones]), np.hstack([-2.0 * single, ones, norms])
    margin = _rounding_margin(dim, float(sq_norms.max(initial=0.0)), np.float32)
    for start in range(0, n, chunk):
        d2 = left[start : start + chunk] @ right[start:].T
        r, c = np.nonzero(d2 <= eps2 + margin)
        keep = c > r  # each pair once, no self-pairs
        r, c = r[keep].astype(np.int32), c[keep].astype(np.int32)
        unsure = d2[r, c] > eps2 - margin
        r += start
        c += start
        ur, uc = r[unsure], c[unsure]
        exact = sq_norms[ur] + sq_norms[uc] - 2.0 * np.einsum("ij,ij->i", vectors[ur], vectors[uc])
        yield (r[~unsure], c[~unsure]), (ur, uc, exact)


def _eps_graph(
    vectors: np.ndarray, sq_norms: np.ndarray, eps2: float, max_pairs: int, chunk: int = 512
):
    """(linked, ties, tie_d2) over all rows: the pairs surely within eps and the pairs whose
    float64 distance lies within its rounding bound of eps, each as (lower rows, higher rows)
    int32 arrays, and the ties' float64 squared distances; None above max_pairs pairs."""
    margin = _rounding_margin(vectors.shape[1], float(sq_norms.max(initial=0.0)), np.float64)
    none = np.zeros(0, dtype=np.int32)
    linked, ties, total = [(none, none)], [(none, none, np.zeros(0))], 0
    for (r, c), (ur, uc, d2) in _eps_pairs(vectors, sq_norms, eps2, chunk):
        sure = d2 <= eps2 - margin
        tie = ~sure & (d2 <= eps2 + margin)
        linked += [(r, c), (ur[sure], uc[sure])]
        ties.append((ur[tie], uc[tie], d2[tie]))
        total += len(r) + len(ur)
        if total > max_pairs:
            return None
    (lr, lc), (tr, tc, tie_d2) = (
        tuple(np.concatenate(part) for part in zip(*pairs)) for pairs in (linked, ties)
    )
    return (lr, lc), (tr, tc), tie_d2


def _streamed_components(n: int, pairs) -> np.ndarray:
    """Connected components of a graph on n nodes whose edges come in blocks of (rows, cols):
    each block is merged into the components so far, so memory grows with a block and n, never
    with the whole graph (one pool of every train row: method global)."""
    labels = np.arange(n)
    for r, c in pairs:
        graph = coo_matrix((np.ones(len(r), dtype=np.int8), (labels[r], labels[c])), shape=(n, n))
        labels = connected_components(graph, directed=False)[1][labels]
    return labels


def _pool_sq_distances(vectors: np.ndarray, sq_norms: np.ndarray, members: np.ndarray):
    """(pools, L, L) float64 squared distances of padded pools (one batched matrix product):
    the arithmetic every pool's radius test reads, wherever float32 cannot decide it."""
    x = vectors[members]
    n2 = sq_norms[members]
    return n2[:, :, None] + n2[:, None, :] - 2.0 * np.matmul(x, x.transpose(0, 2, 1))


def _batched_group_ids(vectors, sq_norms, pools: Pools, eps2: float, batch_size: int, which):
    """Group ids (distinct within each pool) of the pools `which` (sorted), from their float64
    distance matrices, computed in the batches of batch_size pools that the per-batch path
    uses (same padding, same products)."""
    which = np.asarray(which, dtype=np.int64)
    rows, ids = [], []
    for batch in np.unique(which // batch_size):
        start = int(batch) * batch_size
        stop = min(start + batch_size, len(pools))
        members, valid = pools.padded(start, stop)
        chosen = which[(which >= start) & (which < stop)] - start
        if len(chosen) < stop - start:
            members, valid = members[chosen], valid[chosen]
        d2 = _pool_sq_distances(vectors, sq_norms, members)
        ids.append(_components(d2 <= eps2, valid))
        rows.append(chosen + start)
    return np.concatenate(rows), np.concatenate(ids)


def _csr(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the (row, col) entries, grouped by row."""
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return indptr.astype(np.int64), cols[order]


def _links_in_pool(indptr, indices, members, pool, position, n):
    """(member, linked member) as flat positions in a batch: the CSR entries of every member
    that are members of its own pool (position[pool * n + row] holds 1 + a member's flat
    position, 0 for rows outside the pool)."""
    links = indptr[members + 1] - indptr[members]
    holder = np.flatnonzero(links)
    links = links[holder]
    entry = np.repeat(indptr[members[holder]] - np.cumsum(links) + links, links)
    entry += np.arange(len(entry))
    cell = np.repeat(pool[holder] * n, links)
    cell += indices[entry]
    target = position.take(cell)
    found = np.flatnonzero(target)
    return np.repeat(holder, links)[found], target[found] - 1


GRAPH_PAIRS = 20_000_000  # pairs the eps-graph may hold (above: the per-batch path)
MAX_DENSE_NODES = 8192  # rows of the dense adjacency of high-degree nodes (64 MB)
POSITION_CELLS = 8_000_000  # pools x rows of one batch's position table (32 MB of int32)
LOOKUPS = 5_000_000  # look-ups per batch
STEP = 1_000_000  # pairs per step through the eps-graph


def _dense_degree(member_degree: np.ndarray, rows: np.ndarray, degree: np.ndarray, n_pools: int):
    """The degree above which a node's links inside a pool are read from a dense adjacency
    matrix (every pair of such members) rather than from its neighbour list: the threshold
    2^b - 1 with the fewest look-ups (list entries plus dense pairs), with at most
    MAX_DENSE_NODES dense nodes."""
    bits = np.frexp(member_degree.astype(np.float64))[1].astype(np.int64)  # degree <= 2^b - 1
    width = int(max(bits.max(initial=0), np.frexp(float(degree.max(initial=0)))[1])) + 2
    per_pool = np.bincount(rows * width + bits, minlength=n_pools * width).reshape(n_pools, width)
    above = np.cumsum(per_pool[:, ::-1], axis=1)[:, ::-1]  # above[q, b]: members with bits >= b
    dense = above[:, 1:].astype(np.float64)  # dense[q, b]: members of degree > 2^b - 1
    pairs = (dense * (dense - 1) / 2).sum(axis=0)
    listed = np.cumsum(np.bincount(bits, weights=member_degree, minlength=width))[: width - 1]
    node_bits = np.frexp(degree.astype(np.float64))[1]
    dense_nodes = len(degree) - np.cumsum(np.bincount(node_bits, minlength=width))[: width - 1]
    cost = np.where(dense_nodes <= MAX_DENSE_NODES, pairs + listed, np.inf)
    return 2 ** int(np.argmin(cost)) - 1


def _dense_links(pool, ids, degree, adjacency, n_pools):
    """Linked pairs (indices into the members given, grouped by pool) among each pool's
    high-degree members, enough for the components: the member of highest degree (the hub) is
    tested against the others, and the members it does not reach against every other member.
    A pair of two members the hub reaches is skipped: both are in the hub's component."""
    n_dense, flat = len(adjacency), adjacency.reshape(-1)
    count = np.bincount(pool, minlength=n_pools)
    start = np.cumsum(count) - count
    best = np.full(n_pools, -1, dtype=np.int64)
    np.maximum.at(best, pool, degree)
    top = np.flatnonzero(degree == best[pool])
    first_top = top[np.unique(pool[top], return_index=True)[1]]  # first of highest degree
    hub = np.empty(n_pools, dtype=np.int64)
    hub[pool[first_top]] = first_top
    hub = hub[pool]
    reached = flat.take(ids[hub] * n_dense + ids)  # False for the hub itself
    rest = np.flatnonzero(~reached & (hub != np.arange(len(pool))))
    n_other = count[pool[rest]]
    owner = np.repeat(rest, n_other)
    other = np.repeat(start[pool[rest]] - np.cumsum(n_other) + n_other, n_other)
    other += np.arange(len(other))
    # every member of its pool (itself never links; a pair tested twice only links twice)
    linked = flat.take(np.repeat(ids[rest] * n_dense, n_other) + ids[other])
    reached_at = np.flatnonzero(reached)
    return (
        np.concatenate([hub[reached_at], owner[linked]]),
        np.concatenate([reached_at, other[linked]]),
    )


def _induced_components(graph, pools: Pools, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(group ids, pools to decide by their own distances) of every pool's induced subgraph of
    the eps-graph: ids distinct within each pool (not yet canonical).

    A batch of pools gets a dense (pool, row) table that numbers its members, so a member's
    link is found in its own pool by one look-up. Members of low degree look up their
    neighbour lists (a pair of two such members from its lower row only); members of high
    degree, whose lists are longer than a pool, look up every pair of them in the pool in a
    dense matrix. One connected_components call groups the batch. A pool that holds a pair of
    the ties, or a row twice, is returned to be decided by its own distances.
    """
    (lr, lc), (tr, tc) = graph
    steps = range(0, len(lr), STEP)  # steps of pairs: temporaries stay small, memory reused
    degree = np.zeros(n, dtype=np.int64)
    for lo in steps:
        degree += np.bincount(lr[lo : lo + STEP], minlength=n)
        degree += np.bincount(lc[lo : lo + STEP], minlength=n)
    rows = pools.rows()
    member_degree = degree[pools.index]
    dense = degree > _dense_degree(member_degree, rows, degree, len(pools))
    # neighbour lists of the low-degree nodes: their dense neighbours and, of two low-degree
    # nodes, the higher one
    up, down = ~dense[lr], ~dense[lc] & dense[lr]  # lr < lc
    list_ptr, list_idx = _csr(
        np.concatenate([lr[up], lc[down]]), np.concatenate([lc[up], lr[down]]), n
    )
    tie_ptr, tie_idx = _csr(np.concatenate([tr, tc]), np.concatenate([tc, tr]), n)
    dense_id = np.cumsum(dense) - 1
    adjacency = np.zeros((int(dense.sum()),) * 2, dtype=bool)
    for lo in steps:
        r, c = lr[lo : lo + STEP], lc[lo : lo + STEP]
        both = dense[r] & dense[c]
        a, b = dense_id[r[both]], dense_id[c[both]]
        adjacency[a, b] = adjacency[b, a] = True

    looked_up = np.diff(list_ptr) + np.diff(tie_ptr)
    n_dense_members = np.bincount(rows, weights=dense[pools.index], minlength=len(pools))
    pool_cost = np.bincount(rows, weights=looked_up[pools.index], minlength=len(pools))
    cost = np.cumsum(pool_cost + n_dense_members * (n_dense_members - 1) / 2)
    per_batch = max(1, POSITION_CELLS // max(n, 1))
    position = np.zeros(min(per_batch, len(pools)) * n, dtype=np.int32)
    out = np.empty(len(pools.index), dtype=np.int64)
    undecided = [np.zeros(0, dtype=np.int64)]
    start = 0
    while start < len(pools):
        done = cost[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cost, done + LOOKUPS, side="right")))
        stop = min(stop, start + per_batch, len(pools))
        lo, hi = pools.offsets[start], pools.offsets[stop]
        members, pool = pools.index[lo:hi], rows[lo:hi] - start
        cells = pool * n + members
        number = np.arange(1, hi - lo + 1, dtype=np.int32)
        position.put(cells, number)
        undecided.append(pool[position.take(cells) != number] + start)  # a row twice
        # ties: the pools that hold one decide it
        holder, _ = _links_in_pool(tie_ptr, tie_idx, members, pool, position, n)
        undecided.append(pool[holder] + start)
        # low-degree members: their neighbour lists
        first, second = _links_in_pool(list_ptr, list_idx, members, pool, position, n)
        src, dst = [first], [second]
        # high-degree members: pairs of them in each pool, in the dense matrix
        at = np.flatnonzero(dense[members])
        first, second = _dense_links(
            pool[at], dense_id[members[at]], degree[members[at]], adjacency, stop - start
        )
        src.append(at[first])
        dst.append(at[second])
        position.put(cells, 0)
        src, dst = np.concatenate(src), np.concatenate(dst)
        batch_graph = coo_matrix(
            (np.ones(len(src), dtype=np.int8), (src, dst)), shape=(hi - lo, hi - lo)
        )
        out[lo:hi] = connected_components(batch_graph, directed=False)[1]
        start = stop
    return out, np.unique(np.concatenate(undecided))


def dbscan_groups(
    vectors: np.ndarray,
    pools: Pools,
    eps: float,
    batch_size: int = 256,
    max_edges: int = 20_000_000,
) -> np.ndarray:
    """Canonical DBSCAN(eps, min_samples=1) group ids of every pool, flat in pool order.

    A pair links when its float64 squared distance (||a||^2 + ||b||^2 - 2ab, sklearn's
    Euclidean formula) is <= eps^2. Pools overlap heavily (k = 150 neighbours of 9k rows cover
    each pair many times), so the eps-graph of all rows is built once (float32 products with
    rounding bounds, the pairs within them recomputed in float64) and each pool's graph is its
    induced subgraph. A pair whose float64 distance is eps to rounding (the eps rule's radius
    is such a pair's distance) can fall either side depending on the order of the float64
    sums, so the graph's size fixes which arithmetic decides it: in a sparse graph (at most
    ``max_edges`` links, and no more than the pools have members) the pair's own float64
    distance, in a denser one the pool's batched distance matrix of the per-batch path below
    (computed for the pools holding such a pair only). When the graph would hold more than
    GRAPH_PAIRS pairs (eps large for the encoder), or cost more than the pools' own pairs (n
    much larger than k^2: large corpora), every pool takes the per-batch path: batched float64
    distance matrices of batch_size pools at a time. A single pool (the whole train split, for
    method global) is its own eps-graph, whose components are merged block by block: memory
    grows with n, not n^2.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    eps2 = float(eps) ** 2
    if len(pools) == 1:  # one pool (the whole train split): its eps-graph's components
        members = pools.index
        pairs = (
            (np.concatenate([r, ur[d2 <= eps2]]), np.concatenate([c, uc[d2 <= eps2]]))
            for (r, c), (ur, uc, d2) in _eps_pairs(vectors[members], sq_norms[members], eps2)
        )
        return canonical_group_ids(_streamed_components(len(members), pairs), pools.rows(), 1)
    # the eps-graph costs n^2 / 2 pair products, the per-batch path sum(L^2) slower ones; on
    # large corpora with small pools (n >> k^2) the per-batch path is the cheaper one
    pair_products = len(vectors) ** 2 / 2
    global_graph = max_edges > 0 and pair_products <= 4 * float(np.sum(pools.lengths**2.0))
    graph = _eps_graph(vectors, sq_norms, eps2, GRAPH_PAIRS) if global_graph else None
    if graph is not None:
        (lr, lc), (tr, tc), tie_d2 = graph
        within = tie_d2 <= eps2
        if 2 * (len(lr) + int(within.sum())) <= min(max_edges, len(pools.index)):
            # a sparse graph (fewer links than the pools have members): the pairs' own float64
            # distances decide the pairs at the radius
            lr, lc = np.concatenate([lr, tr[within]]), np.concatenate([lc, tc[within]])
            tr, tc = tr[:0], tc[:0]
        out, own = _induced_components(((lr, lc), (tr, tc)), pools, len(vectors))
    else:
        out, own = np.empty(len(pools.index), dtype=np.int64), np.arange(len(pools))
    if len(own):
        chosen, group_ids = _batched_group_ids(vectors, sq_norms, pools, eps2, batch_size, own)
        lengths = pools.lengths[chosen]
        flat = np.repeat(pools.offsets[chosen] - np.cumsum(lengths) + lengths, lengths)
        out[flat + np.arange(len(flat))] = group_ids  # distinct within each pool
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
DUPLICATE_SQ = 1e-12  # squared distance at or below which two vectors count as the same


def eps_rule_pools(n_pools: int, max_pools: int = EPS_RULE_POOLS, seed: int = 0) -> np.ndarray:
    """The pools the eps rule reads: up to `max_pools` of them drawn with `seed`, in order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pools, size=min(n_pools, max_pools), replace=False))


def nearest_distinct_sq(members: np.ndarray) -> np.ndarray:
    """Per member of one pool (its float64 vectors): the squared distance to the nearest member
    with a different vector (exact duplicates are skipped, so repeated responses do not pull
    the radius to 0); inf where there is none."""
    sq = np.einsum("ij,ij->i", members, members)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * members @ members.T, 0.0)
    d2[d2 <= DUPLICATE_SQ] = np.inf  # itself and exact duplicates
    return d2.min(axis=1)


def _screened_nearest_sq(vectors: np.ndarray, pools: Pools, quantile: float, batch: int = 64):
    """nearest_distinct_sq of every member of `pools` (flat), from float32 products: exact
    (nearest_distinct_sq of its pool) where a member could decide the quantile, within the
    float32 rounding bound elsewhere, which leaves the quantile as it is.

    A pair near the duplicate threshold is rechecked in float64, and a pool with one that
    float64 cannot decide either is computed exactly, so which members have a distinct
    neighbour is exact. Then every member whose rounding interval meets the interval that
    bounds the quantile's order statistics gets its pool computed exactly: below and above
    that interval the approximations fall on the same side as the exact values.
    """
    x = np.asarray(vectors)
    single = x.astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    rows = pools.index
    max_sq = float(sq[rows].max(initial=0.0))
    margin = _rounding_margin(x.shape[1], max_sq, np.float32)
    margin64 = _rounding_margin(x.shape[1], max_sq, np.float64)
    nearest = np.empty(len(rows))
    exact = np.zeros(len(pools), dtype=bool)
    exact[:] = margin64 >= DUPLICATE_SQ  # norms too large to tell duplicates in float32
    for start in range(0, len(pools), batch):
        stop = min(start + batch, len(pools))
        members, valid = pools.padded(start, stop)
        if exact[start] or members.shape[1] == 0:
            continue
        x32, n32 = single[members], sq[members].astype(np.float32)
        d2 = np.matmul(x32, x32.transpose(0, 2, 1))
        d2 *= -2.0
        d2 += n32[:, :, None]
        d2 += n32[:, None, :]
        d2.reshape(len(d2), -1)[:, :: members.shape[1] + 1] = np.inf  # itself
        if not valid.all():
            d2[~(valid[:, :, None] & valid[:, None, :])] = np.inf
        low = d2.min(axis=2)
        # members with a pair near the duplicate threshold: those pairs rechecked in float64
        b, i = np.nonzero((low <= DUPLICATE_SQ + margin) & valid)
        k, j = np.nonzero(d2[b, i] <= DUPLICATE_SQ + margin)
        b, i = b[k], i[k]
        mi, mj = members[b, i], members[b, j]
        d2_64 = sq[mi] + sq[mj] - 2.0 * np.einsum("ij,ij->i", x[mi], x[mj], dtype=np.float64)
        same = d2_64 <= DUPLICATE_SQ - margin64
        exact[start + b[~same & (d2_64 <= DUPLICATE_SQ + margin64)]] = True
        d2[b[same], i[same], j[same]] = np.inf
        low[b, i] = d2[b, i].min(axis=1)
        nearest[pools.offsets[start] : pools.offsets[stop]] = np.maximum(low[valid], 0.0)

    def compute_exactly(chosen):
        for q in chosen:
            lo, hi = pools.offsets[q], pools.offsets[q + 1]
            nearest[lo:hi] = nearest_distinct_sq(x[rows[lo:hi]].astype(np.float64))

    compute_exactly(np.flatnonzero(exact))
    found = np.isfinite(nearest)
    if not found.any():
        return nearest
    known = exact[pools.rows()]
    value, bound = nearest[found], np.where(known[found], 0.0, margin)
    rank = (found.sum() - 1) * quantile  # np.quantile's order statistics: floor and ceil
    lo, hi = max(int(np.floor(rank)) - 1, 0), min(int(np.ceil(rank)) + 1, len(value) - 1)
    low = np.partition(value - bound, lo)[lo]
    high = np.partition(value + bound, hi)[hi]
    deciding = np.zeros(len(rows), dtype=bool)
    deciding[found] = (value + bound >= low) & (value - bound <= high) & ~known[found]
    compute_exactly(np.unique(pools.rows()[deciding]))
    return nearest


def eps_from_quantile(vectors: np.ndarray, pools: Pools, quantile: float) -> float:
    """The label-free DBSCAN radius: the `quantile` of the distances from each member of the
    eps_rule_pools to its nearest distinct member (nearest_distinct_sq), so that share of
    responses has a distinct neighbour within eps, whatever the encoder's scale."""
    if not 0 < quantile < 1:
        raise InputError(f"assess.eps_quantile: {quantile} is not in (0, 1)")
    chosen = eps_rule_pools(len(pools))
    lengths = pools.lengths[chosen]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.repeat(pools.offsets[chosen] - offsets[:-1], lengths) + np.arange(offsets[-1])
    nearest = _screened_nearest_sq(vectors, Pools(pools.index[flat], offsets, chosen), quantile)
    distances = np.sqrt(nearest[np.isfinite(nearest)])
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
