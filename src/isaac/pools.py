"""Pools of candidate responses and their groups table, shared by the assess and sample stages.

A pool is the list of train rows whose responses compete as targets for one query row: its
neighbour prompts' rows (pool mode ``neighbours``, the query first) or the rows of its own
prompt group (pool mode ``prompt``). Pools are ragged, so they are stored as CSR arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from isaac.io import InputError, read_arrow, read_json, write_arrow_parquet


class Pools:
    """Ragged pools as CSR: members of pool q are ``index[offsets[q]:offsets[q + 1]]``.

    ``index`` holds row numbers into the train table; ``query`` the pool's own train row.
    """

    def __init__(self, index: np.ndarray, offsets: np.ndarray, query: np.ndarray):
        self.index = np.asarray(index, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.query = np.asarray(query, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self) -> np.ndarray:
        """Pool number of every flat member."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def positions(self) -> np.ndarray:
        """Position of every flat member inside its pool."""
        return np.arange(len(self.index)) - np.repeat(self.offsets[:-1], self.lengths)

    def padded(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(members, valid) of pools start..stop-1 padded to the longest, pad = 0 / False."""
        lengths = self.lengths[start:stop]
        width = int(lengths.max()) if len(lengths) else 0
        valid = np.arange(width)[None, :] < lengths[:, None]
        members = np.zeros((stop - start, width), dtype=np.int64)
        lo, hi = self.offsets[start], self.offsets[stop]
        members[valid] = self.index[lo:hi]
        return members, valid


def group_sizes(
    lengths: np.ndarray,
    group_ids: np.ndarray,
    weights: np.ndarray | None = None,
    width: int | None = None,
) -> np.ndarray:
    """(pools, width) size of every group id in every pool: its member count, or its members'
    summed weight when `weights` are given (the sampler's group size).

    group_ids and weights are flat, pool after pool (lengths[q] members for pool q), each id
    below `width`, by default the longest pool (canonical ids number a pool's groups from 0).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max(initial=0)) if width is None else int(width)
    key = np.repeat(np.arange(len(lengths)) * width, lengths) + group_ids
    sizes = np.bincount(key, weights=weights, minlength=len(lengths) * width)
    return sizes.reshape(len(lengths), width)


def groups_by_size(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each pool's group ids, largest size first and absent ids last: column 0 is the pool's
    head. Stable on the id, so ties keep the group that appears first in the pool."""
    return np.argsort(np.where(counts > 0, -sizes, np.inf), axis=1, kind="stable")


def pools_from_lists(lists: Sequence[Sequence[int]], query: Sequence[int] | None = None) -> Pools:
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if len(lists) else []
    if query is None:
        query = [x[0] if len(x) else -1 for x in lists]
    return Pools(np.asarray(flat, dtype=np.int64), offsets, np.asarray(query))


def _row_numbers(ids: pa.Array, train_ids: pa.Array, path, name: str) -> np.ndarray:
    """Train row number of every id; an id that is not a train row is an InputError."""
    index = pc.index_in(ids.cast(pa.string()), value_set=train_ids)
    if index.null_count:
        bad = ids[pc.index(pc.is_null(index), True).as_py()].as_py()
        raise InputError(f"{path}: {name} {bad!r} is not a train row of the corpus")
    return index.to_numpy().astype(np.int64)


def list_pools(
    query_ids: pa.Array, member_ids: pa.ListArray, train_ids: np.ndarray, path="neighbours"
) -> Pools:
    """Pools from a table's id column and list<id> column, mapped to train row numbers."""
    train = pa.array(np.asarray(train_ids, dtype=str), type=pa.string())
    offsets = member_ids.offsets.to_numpy().astype(np.int64)
    index = _row_numbers(member_ids.flatten(), train, path, "neighbour id")
    query = _row_numbers(query_ids, train, path, "id")
    return Pools(index, offsets - offsets[0], query)


def read_neighbour_pools(path, train_ids: np.ndarray) -> Pools:
    """The pools of neighbours/{encoder}-k{k}.parquet."""
    table = read_arrow(path, ["id", "neighbour_ids"])
    return list_pools(
        table["id"].combine_chunks(), table["neighbour_ids"].combine_chunks(), train_ids, path
    )


# The pool mode of groups/{assessor}-global (method global): one pool of every train row in
# corpus order, grouped once; its table has one row, named by the first train row.
GLOBAL_POOL = "global"


def global_pool(n_train: int) -> Pools:
    """Pool mode ``global``: every train row, in corpus order, as one pool."""
    return pools_from_lists([np.arange(n_train)])


def prompt_pools(groups: pd.Series) -> Pools:
    """Pool mode ``prompt``: a row's pool is its own row, then the other rows of its prompt
    group."""
    keys = groups.to_numpy(dtype=object)
    n = len(keys)
    members: dict = {}
    for i, key in enumerate(keys):
        if key is not None and not (isinstance(key, float) and np.isnan(key)):
            members.setdefault(key, []).append(i)
    lists = []
    for i, key in enumerate(keys):
        same = members.get(key)
        lists.append([i] + [j for j in same if j != i] if same else [i])
    return pools_from_lists(lists, np.arange(n))


def groups_table(
    train_ids: np.ndarray, pools: Pools, group_ids: np.ndarray, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """groups/{assessor}.parquet: id, pool_ids (list<str>), group (list<int>) [, weight]."""
    ids = np.asarray(train_ids, dtype=str)
    cuts = pools.offsets[1:-1]
    table = {
        "id": pd.Series(ids[pools.query], dtype=object),
        "pool_ids": pd.Series(np.split(ids[pools.index], cuts), dtype=object),
        "group": pd.Series(np.split(group_ids.astype(np.int32), cuts), dtype=object),
    }
    if weights is not None:
        table["weight"] = pd.Series(np.split(weights.astype(np.float64), cuts), dtype=object)
    return pd.DataFrame(table)


def write_groups(
    train_ids: np.ndarray, pools: Pools, group_ids: np.ndarray, weights: np.ndarray | None, path
) -> None:
    """Write groups_table, built in Arrow (the same bytes, without a Python object per member)."""
    ids = pa.array(np.asarray(train_ids, dtype=str), type=pa.string())
    offsets = pa.array(pools.offsets.astype(np.int32))
    columns = {
        "id": ids.take(pa.array(pools.query)),
        "pool_ids": pa.ListArray.from_arrays(offsets, ids.take(pa.array(pools.index))),
        "group": pa.ListArray.from_arrays(offsets, pa.array(group_ids.astype(np.int32))),
    }
    if weights is not None:
        columns["weight"] = pa.ListArray.from_arrays(offsets, pa.array(weights.astype(np.float64)))
    first = Pools(pools.index[: pools.offsets[1]], pools.offsets[:2], pools.query[:1])
    like = groups_table(
        train_ids,
        first,
        group_ids[: pools.offsets[1]],
        None if weights is None else weights[: pools.offsets[1]],
    )
    write_arrow_parquet(columns, like, path)


def _lengths(lists: pa.ListArray) -> np.ndarray:
    return pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)


def read_groups(path, train_ids: np.ndarray) -> tuple[Pools, np.ndarray, np.ndarray | None]:
    """(pools, flat canonical group ids, flat weights or None) from groups/{assessor}.parquet."""
    table = read_arrow(path, ["id", "pool_ids", "group"], optional=("weight",))
    pool_ids = table["pool_ids"].combine_chunks()
    pools = list_pools(table["id"].combine_chunks(), pool_ids, train_ids, path)
    group = table["group"].combine_chunks()
    if not np.array_equal(_lengths(group), pools.lengths):
        raise InputError(f"{path}: 'group' and 'pool_ids' lists differ in length")
    flat = group.flatten().to_numpy().astype(np.int64)
    if (flat < 0).any():
        raise InputError(f"{path}: negative group id")
    weights = None
    if "weight" in table.column_names:
        weight = table["weight"].combine_chunks()
        weights = weight.flatten().to_numpy().astype(np.float64)
        if (
            not np.array_equal(_lengths(weight), pools.lengths)
            or not np.all(np.isfinite(weights))
            or (weights <= 0).any()
        ):
            raise InputError(f"{path}: 'weight' must be positive, finite, one per pool member")
    return pools, flat, weights


# What made a groups table (assess writes it in groups/{assessor}.json beside the table); the
# sample stage records it with every target drawn from the groups.
GROUPS_PROVENANCE = ("assessor", "pool", "encoder", "k", "eps")


def read_groups_provenance(path) -> dict:
    """The assessor, pool mode, encoder, k and eps that made a groups table, from the
    statistics beside it (groups/{assessor}.json)."""
    stats = read_json(path)
    missing = [key for key in GROUPS_PROVENANCE if key not in stats]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)} (written by assess)")
    return {key: stats[key] for key in GROUPS_PROVENANCE}
