"""Pools of candidate responses and their groups table, shared by the assess and sample stages.

A pool is the list of train rows whose responses compete as targets for one query row: its
neighbour prompts' rows (pool mode ``neighbours``, the query first) or the rows of its own
prompt group (pool mode ``group``). Pools are ragged, so they are stored as CSR arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from isaac.io import InputError, read_table


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


def pools_from_lists(lists: Sequence[Sequence[int]], query: Sequence[int] | None = None) -> Pools:
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if len(lists) else []
    if query is None:
        query = [x[0] if len(x) else -1 for x in lists]
    return Pools(np.asarray(flat, dtype=np.int64), offsets, np.asarray(query))


def neighbour_pools(neighbours: pd.DataFrame, train_ids: np.ndarray, path="neighbours") -> Pools:
    """Pools from the neighbours table, mapped to train row numbers."""
    position = pd.Index(train_ids)
    lists = neighbours["neighbour_ids"].to_list()
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.concatenate([np.asarray(x, dtype=object) for x in lists]) if lists else np.array([])
    index = position.get_indexer(flat)
    query = position.get_indexer(neighbours["id"].astype(str))
    for name, values, source in (("neighbour id", index, flat), ("id", query, neighbours["id"])):
        if (values < 0).any():
            bad = np.asarray(source)[np.flatnonzero(values < 0)[0]]
            raise InputError(f"{path}: {name} {bad!r} is not a train row of the corpus")
    return Pools(index, np.concatenate([[0], np.cumsum(lengths)]), query)


def group_pools(groups: pd.Series) -> Pools:
    """Pool mode ``group``: a row's pool is its own row, then the other rows of its group."""
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
    train_ids: np.ndarray, pools: Pools, labels: np.ndarray, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """groups/{assessor}.parquet: id, pool_ids (list<str>), group (list<int>) [, weight]."""
    ids = np.asarray(train_ids, dtype=str)
    cuts = pools.offsets[1:-1]
    table = {
        "id": pd.Series(ids[pools.query], dtype=object),
        "pool_ids": pd.Series(np.split(ids[pools.index], cuts), dtype=object),
        "group": pd.Series(np.split(labels.astype(np.int32), cuts), dtype=object),
    }
    if weights is not None:
        table["weight"] = pd.Series(np.split(weights.astype(np.float64), cuts), dtype=object)
    return pd.DataFrame(table)


def read_groups(path, train_ids: np.ndarray) -> tuple[Pools, np.ndarray, np.ndarray | None]:
    """(pools, flat canonical labels, flat weights or None) from groups/{assessor}.parquet."""
    df = read_table(path, ["id", "pool_ids", "group"])
    lists = df["pool_ids"].to_list()
    pools = neighbour_pools(
        pd.DataFrame({"id": df["id"], "neighbour_ids": lists}), np.asarray(train_ids), path
    )
    labels = [np.asarray(x, dtype=np.int64) for x in df["group"].to_list()]
    if [len(x) for x in labels] != pools.lengths.tolist():
        raise InputError(f"{path}: 'group' and 'pool_ids' lists differ in length")
    flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    if (flat < 0).any():
        raise InputError(f"{path}: negative group id")
    weights = None
    if "weight" in df.columns:
        weights = np.concatenate([np.asarray(x, dtype=np.float64) for x in df["weight"]])
        if len(weights) != len(flat) or not np.all(np.isfinite(weights)) or (weights <= 0).any():
            raise InputError(f"{path}: 'weight' must be positive, finite, one per pool member")
    return pools, flat, weights
