"""Many responses per prompt: is a prompt's head group judged safer than its other responses?

For a corpus with several responses per prompt (`assess.pool: prompt`; for example DiaSafety's
validation generations, about ten per context and model), each distinct pool is split into its
head, the assessor's largest group as the sampler sizes it (by summed member weight for a
weighted assessor such as likelihood; ties go to the first-seen group), and the rest. The judge
(trained on a labelled corpus, `judge.from`) gives every response a verdict. Per prompt,
d = unsafe share of the rest - unsafe share of the head, so d > 0 means the head is safer. The
mean of d over prompts whose head holds at least two responses and whose rest is not empty is
reported with a 95% bootstrap interval over prompts (rule ``head_safety``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from isaac.bootstrap import SummaryConfig, bootstrap_interval, resample_indices
from isaac.cli import run
from isaac.io import InputError, train_rows, write_json, write_parquet
from isaac.judge import load_judge
from isaac.pools import Pools, group_sizes, groups_by_size, read_groups
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.head_safety")


def distinct_pools(pools: Pools) -> np.ndarray:
    """Pool numbers with a member set not seen before (group pools repeat once per member)."""
    members = pools.index[np.lexsort((pools.index, pools.rows()))]  # sorted within each pool
    sets = pd.Series(
        [members[lo:hi].tobytes() for lo, hi in zip(pools.offsets[:-1], pools.offsets[1:])]
    )
    return np.flatnonzero(~sets.duplicated().to_numpy())


def head_rest_table(
    pools: Pools, group_ids: np.ndarray, unsafe: np.ndarray, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """Per distinct pool: its query row, sizes, and the unsafe shares of head and rest. The head
    is the sampler's largest group: by summed member weight when the groups table has weights."""
    counts = group_sizes(pools.lengths, group_ids)
    sizes = counts if weights is None else group_sizes(pools.lengths, group_ids, weights)
    head = groups_by_size(counts, sizes)[:, 0]
    member_pool = pools.rows()
    in_head = group_ids == head[member_pool]
    verdict = unsafe[pools.index]
    head_size = counts[np.arange(len(pools)), head]
    rest_size = pools.lengths - head_size
    unsafe_in_head = np.bincount(member_pool, weights=in_head & verdict, minlength=len(pools))
    unsafe_in_rest = np.bincount(member_pool, weights=~in_head & verdict, minlength=len(pools))
    table = (
        pd.DataFrame(
            {
                "query": pools.query,
                "n_responses": pools.lengths,
                "head_size": head_size,
                "head_unsafe": unsafe_in_head / head_size,
                "rest_unsafe": np.divide(
                    unsafe_in_rest, rest_size, out=np.full(len(pools), np.nan), where=rest_size > 0
                ),
            }
        )
        .iloc[distinct_pools(pools)]
        .reset_index(drop=True)
    )
    table["difference"] = table["rest_unsafe"] - table["head_unsafe"]
    return table


def summarise(table: pd.DataFrame, config: SummaryConfig) -> dict:
    """The mean head-vs-rest difference over the prompts that have both a head and a rest."""
    compared = table[(table["head_size"] >= 2) & table["rest_unsafe"].notna()]
    if compared.empty:
        raise InputError(
            "no pool has a head of two or more responses and other responses "
            "besides (is assess.pool group, and are there several per prompt?)"
        )
    d = compared["difference"].to_numpy()
    seeds, prompts = resample_indices(1, len(d), config.resamples, config.seed)
    lo, hi = bootstrap_interval(d[None, :], seeds, prompts)  # one seed: prompts are resampled
    return {
        "n_pools": int(len(table)),
        "n_compared": int(len(compared)),
        "mean_responses": float(table["n_responses"].mean()),
        "mean_head_size": float(compared["head_size"].mean()),
        "head_unsafe": float(compared["head_unsafe"].mean()),
        "rest_unsafe": float(compared["rest_unsafe"].mean()),
        "difference": float(d.mean()),
        "difference_lo": lo,
        "difference_hi": hi,
        "share_head_safer": float((d > 0).mean()),
        "share_head_less_safe": float((d < 0).mean()),
        "resamples": config.resamples,
        "seed": config.seed,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--groups", required=True, help="groups/{assessor}.parquet")
    parser.add_argument("--judge", required=True, help="judge/{features}/ folder")
    add_config_argument(parser, SummaryConfig)  # its bootstrap: resamples, seed
    parser.add_argument("--out", required=True, help="head_safety.json")
    parser.add_argument("--table", required=True, help="head_safety.parquet (per prompt)")
    args = parser.parse_args(argv)
    config = parse(SummaryConfig, args.config)
    train = train_rows(args.corpus)
    pools, group_ids, weights = read_groups(args.groups, train["id"].to_numpy())
    judge = load_judge(args.judge)
    unsafe = np.asarray(judge.unsafe(train["prompt"].tolist(), train["response"].tolist()), bool)
    table = head_rest_table(pools, group_ids, unsafe, weights)
    summary = summarise(table, config)
    table.insert(0, "prompt", train["prompt"].to_numpy()[table["query"].to_numpy()])
    write_parquet(table.drop(columns="query"), args.table)
    write_json({**summary, "judge": judge.features, "judge_threshold": judge.threshold}, args.out)
    log.info(
        "head vs rest over %d prompts: %+.4f [%+.4f, %+.4f]",
        summary["n_compared"],
        summary["difference"],
        summary["difference_lo"],
        summary["difference_hi"],
    )


if __name__ == "__main__":
    run(main)
