"""Pools as CSR arrays: the per-pool group sizes every stage that looks at groups shares."""

from __future__ import annotations

import numpy as np
import pytest

from isaac.pools import group_sizes


def naive_group_sizes(lengths, group_ids, weights, width):
    sizes = np.zeros((len(lengths), width))
    start = 0
    for q, n in enumerate(lengths):
        for j in range(start, start + n):
            sizes[q, group_ids[j]] += 1.0 if weights is None else weights[j]
        start += n
    return sizes


@pytest.mark.parametrize("weighted", [False, True])
def test_group_sizes_equal_a_loop_over_members(weighted):
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, size=40)
    lengths[[5, 17]] = [12, 0]  # a longest pool, and an empty one
    group_ids = np.concatenate([rng.integers(0, n, size=n) for n in lengths])
    weights = rng.random(len(group_ids)) + 0.5 if weighted else None
    sizes = group_sizes(lengths, group_ids, weights)
    assert sizes.shape == (40, 12)
    assert sizes.dtype == (np.float64 if weighted else np.int64)
    # the same additions in the same order: equal to the last bit
    assert np.array_equal(sizes, naive_group_sizes(lengths, group_ids, weights, 12))


def test_group_sizes_by_hand_with_a_wider_table():
    # pool 0: groups 0 0 1; pool 1: group 0 (weights 2 and 0.5 on its members)
    sizes = group_sizes([3, 2], np.array([0, 0, 1, 0, 0]), width=4)
    assert sizes.tolist() == [[2, 1, 0, 0], [2, 0, 0, 0]]
    weighted = group_sizes([3, 2], np.array([0, 0, 1, 0, 0]), np.array([1, 1, 3, 2, 0.5]))
    assert weighted.tolist() == [[2.0, 3.0, 0.0], [2.5, 0.0, 0.0]]
