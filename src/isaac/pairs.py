"""Preference pairs from each train example's pool: a chosen and a rejected response, m per example.

Methods (the ``{method}`` wildcard of ``pairs/{method}/tau{tau}-m{m}-seed{seed}.parquet``):

- ``isaac_dpo``, no labels: ``chosen`` is drawn exactly as ``isaac`` draws its targets (same
  groups, settings, shortcut and random streams, so the chosen responses are that run's
  targets). ``rejected`` comes from the pool's tail: the example's own response when its group
  is not one of the K kept (head) groups, else a uniform member of the pool's smallest groups
  outside the head. A pool whose groups all lie in the head (one group, or K or fewer) has no
  tail, and its example no pair.
- ``oracle_dpo``, with the labels (a ceiling): ``chosen`` a uniform member of the pool labelled
  safe, ``rejected`` one labelled unsafe; a pool without both has no pair.

The statistics report, from the labels and only to report, the pair agreement: of the pairs
whose two responses are labelled, the share whose chosen is safe and rejected unsafe, the share
the other way round, and the same for random pairs (two uniform members of the same pool),
overall and per category of the example.

Randomness: numpy Generators seeded from (seed, crc32(method), stream); isaac_dpo's chosen use
isaac's own generators (streams 0 and 1), its rejected stream 2, the random pairs streams 3
and 4.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, train_rows, write_json, write_parquet
from isaac.pools import GROUPS_PROVENANCE, Pools, read_groups, read_groups_provenance
from isaac.provenance import stamp
from isaac.runs import PAIR_METHODS, Run, add_run_arguments
from isaac.sample import (
    SampleConfig,
    check_settings,
    distinct_response_weights,
    example_columns,
    optional_column,
    padded_groups,
    polluted_rows,
    pool_queries,
    pool_targets,
    ranked_groups,
    response_lists,
    safe_rate,
    stable_hash,
)
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.pairs")

REJECTED_STREAM, RANDOM_STREAMS = 2, (3, 4)


def pair_generator(seed: int, method: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stable_hash(method), stream])


def uniform_members(eligible: np.ndarray, u: np.ndarray, pool_of: np.ndarray):
    """(positions (Q, m), counts (Q,)): a uniform eligible member of each query's pool for each
    uniform of u (m, Q); position 0 where the pool has no eligible member (count 0)."""
    order = np.argsort(~eligible, axis=1, kind="stable")  # eligible members first, pool order
    count = eligible.sum(axis=1)[pool_of]
    pick = np.minimum((u * count).astype(np.int64), np.maximum(count - 1, 0))
    return order[pool_of[None, :], pick].T, count


def tail_groups(counts, sizes, order, n_groups, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(tail, outside), each (pools, width): whether a group is outside its pool's K kept
    groups, and whether it is also of the smallest size among those (the tail)."""
    n_pools, width = counts.shape
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(width)[None, :].repeat(n_pools, axis=0), axis=1)
    outside = (counts > 0) & (rank >= np.minimum(n_groups, top_k)[:, None])
    smallest = np.where(outside, sizes, np.inf).min(axis=1, initial=np.inf)
    return outside & (sizes == smallest[:, None]), outside


def isaac_pairs(run: Run, config: SampleConfig, train, pools: Pools, group_ids, weights):
    """(query rows, chosen rows (Q, m), rejected rows (Q, m), has pair (Q,), own rejected (Q,))."""
    chosen_run = Run("isaac", run.tau, run.m, run.seed)
    rows, chosen, _ = pool_targets(chosen_run, config, pools, group_ids, weights, len(train))
    members, valid, padded_ids, padded_weights = padded_groups(pools, group_ids, weights)
    _, pool_of, own_pos = pool_queries("isaac", pools, members, valid, len(train))
    counts, sizes, order, n_groups = ranked_groups(padded_ids, valid, padded_weights)
    tail, outside = tail_groups(counts, sizes, order, n_groups, config.top_k_groups)
    in_tail = valid & np.take_along_axis(tail, padded_ids, axis=1)
    u = pair_generator(run.seed, run.method, REJECTED_STREAM).random((run.m, len(rows)))
    positions, count = uniform_members(in_tail, u, pool_of)
    own_group = padded_ids[pool_of, np.maximum(own_pos, 0)]
    own_rejected = (own_pos >= 0) & outside[pool_of, own_group]
    positions = np.where(own_rejected[:, None], own_pos[:, None], positions)
    rejected = members[pool_of[:, None], positions]
    return rows, chosen, rejected, count > 0, own_rejected


def oracle_pairs(run: Run, safety_label: np.ndarray, pools: Pools):
    """(query rows, chosen rows, rejected rows, has pair, own rejected): a member labelled safe
    against one labelled unsafe, from each pool."""
    members, valid = pools.padded(0, len(pools))
    label = np.where(valid, safety_label[members], None)
    pool_of = np.arange(len(pools))
    draws = []
    for stream, wanted in enumerate(("safe", "unsafe")):
        u = pair_generator(run.seed, run.method, stream).random((run.m, len(pools)))
        draws.append(uniform_members(valid & (label == wanted), u, pool_of))
    (chosen, n_safe), (rejected, n_unsafe) = draws
    rejected_rows = members[pool_of[:, None], rejected]
    has_pair = (n_safe > 0) & (n_unsafe > 0)
    own = rejected_rows == pools.query[:, None]
    return pools.query, members[pool_of[:, None], chosen], rejected_rows, has_pair, own.all(axis=1)


def random_pairs(run: Run, pools: Pools) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform members of each pool, m times: the agreement label-free pairs are compared
    with."""
    members, valid = pools.padded(0, len(pools))
    pool_of = np.arange(len(pools))
    rows = []
    for stream in RANDOM_STREAMS:
        u = pair_generator(run.seed, run.method, stream).random((run.m, len(pools)))
        rows.append(members[pool_of[:, None], uniform_members(valid, u, pool_of)[0]])
    return rows[0], rows[1]


def agreement(first: np.ndarray, second: np.ndarray) -> dict:
    """Of the pairs whose two responses are labelled: the share (first safe, second unsafe),
    the share the other way round, and their number."""
    labelled = (first != None) & (second != None)  # noqa: E711 (object arrays)
    n = int(labelled.sum())
    if n == 0:
        return {"agree": None, "reverse": None, "labelled_pairs": 0}
    a, b = first[labelled], second[labelled]
    return {
        "agree": float(np.mean((a == "safe") & (b == "unsafe"))),
        "reverse": float(np.mean((a == "unsafe") & (b == "safe"))),
        "labelled_pairs": n,
    }


def pair_agreement(label, category, rows, chosen, rejected, random_first, random_second) -> dict:
    """Agreement of the pairs and of random pairs of the same pools, overall and per category
    of the query row (None without categories)."""
    pairs = (label[chosen], label[rejected])
    randoms = (label[random_first], label[random_second])
    out = {"agreement": agreement(*pairs), "random_agreement": agreement(*randoms)}
    names = sorted({c for c in category if c is not None and not pd.isna(c)})
    if not names:
        return {**out, "agreement_by_category": None, "random_agreement_by_category": None}
    query = category[rows]
    return {
        **out,
        "agreement_by_category": {c: agreement(*(p[query == c] for p in pairs)) for c in names},
        "random_agreement_by_category": {
            c: agreement(*(p[query == c] for p in randoms)) for c in names
        },
    }


def pairs_table(train: pd.DataFrame, rows, chosen, rejected, own_rejected) -> pd.DataFrame:
    """pairs/{run}.parquet: each example with a pair, its m chosen and m rejected responses."""
    chosen_texts, chosen_ids = response_lists(train, chosen)
    rejected_texts, rejected_ids = response_lists(train, rejected)
    return pd.DataFrame(
        {
            **example_columns(train, rows),
            "chosen": chosen_texts,
            "chosen_ids": chosen_ids,
            "rejected": rejected_texts,
            "rejected_ids": rejected_ids,
            "rejected_own": own_rejected.astype(bool),
        }
    )


def pairs(
    run: Run,
    train: pd.DataFrame,
    config: SampleConfig,
    pools: Pools,
    group_ids: np.ndarray,
    weights: np.ndarray | None = None,
    provenance: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """(pairs table, stats) for one run; refused when no example has a pair."""
    if run.method not in PAIR_METHODS:
        raise InputError(f"method {run.method!r} has no pairs (methods: {', '.join(PAIR_METHODS)})")
    if run.m < 1 or not run.tau > 0:
        raise InputError(f"m must be >= 1 and tau > 0 (got m={run.m}, tau={run.tau})")
    check_settings(PAIR_METHODS[run.method] or run.method, config)
    label = optional_column(train, "label")
    if run.method == "isaac_dpo":
        if config.group_size == "distinct":
            weights = distinct_response_weights(pools, group_ids, train["response"], weights)
        rows, chosen, rejected, has_pair, own = isaac_pairs(
            run, config, train, pools, group_ids, weights
        )
        why = f"no pool has a group outside its {config.top_k_groups} largest (no tail)"
    else:
        rows, chosen, rejected, has_pair, own = oracle_pairs(run, label, pools)
        why = "no pool holds both a response labelled safe and one labelled unsafe"
    if not has_pair.any():
        raise InputError(f"{len(rows)} train examples and none has a pair: {why}")
    random_first, random_second = random_pairs(run, pools)
    rows, chosen, rejected, own = (
        rows[has_pair],
        chosen[has_pair],
        rejected[has_pair],
        own[has_pair],
    )
    polluted = polluted_rows(train)
    stats = {
        "n": int(len(has_pair)),
        "n_with_pair": int(has_pair.sum()),
        "n_without_pair": int((~has_pair).sum()),
        "n_pairs": int(chosen.size),
        "rejected_own_share": float(own.mean()),
        "distinct_chosen_share": float(len(np.unique(chosen)) / len(train)),
        "distinct_rejected_share": float(len(np.unique(rejected)) / len(train)),
        # as the sample stage names them for targets: the summary reads them for a pair run
        "original_safe_rate": safe_rate(pd.Series(label, dtype=object)),
        "oracle_safe_rate": safe_rate(pd.Series(label[chosen].ravel(), dtype=object)),
        "oracle_safe_rate_rejected": safe_rate(pd.Series(label[rejected].ravel(), dtype=object)),
        "polluted_share": float(polluted[chosen].mean()),
        "polluted_share_rejected": float(polluted[rejected].mean()),
        **pair_agreement(
            label,
            optional_column(train, "category"),
            rows,
            chosen,
            rejected,
            random_first[has_pair],
            random_second[has_pair],
        ),
        "method": run.method,
        "tau": float(run.tau),
        "m": int(run.m),
        "seed": int(run.seed),
        **asdict(config),
        **(provenance or dict.fromkeys(GROUPS_PROVENANCE)),
    }
    return pairs_table(train, rows, chosen, rejected, own), stats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--groups", required=True, help="groups/{assessor}.parquet")
    parser.add_argument(
        "--groups-stats", required=True, help="groups/{assessor}.json: what made the groups"
    )
    add_run_arguments(parser, tuple(PAIR_METHODS))
    add_config_argument(parser, SampleConfig)
    parser.add_argument(
        "--out", required=True, help="pairs/{method}/tau{tau}-m{m}-seed{seed}.parquet"
    )
    parser.add_argument("--stats", required=True, help="the JSON stats file")
    args = parser.parse_args(argv)
    run_ = Run.from_args(args)
    config = parse(SampleConfig, args.config)
    train = train_rows(args.corpus)
    pools, group_ids, weights = read_groups(args.groups, train["id"].to_numpy())
    provenance = read_groups_provenance(args.groups_stats)
    table, stats = pairs(run_, train, config, pools, group_ids, weights, provenance)
    write_parquet(table, args.out)
    write_json({**stats, **stamp()}, args.stats)
    log.info(
        "%s: %d of %d examples with a pair, agreement %s (random %s)",
        args.out,
        stats["n_with_pair"],
        stats["n"],
        stats["agreement"]["agree"],
        stats["random_agreement"]["agree"],
    )


if __name__ == "__main__":
    run(main)
