"""Sample m training targets per train example from the head of its pool (ISAAC steps 4-8).

Methods:
- ``raw``: the example's own response, m copies.
- ``random``: a uniform pool member (p proportional to N over all groups, then a uniform member).
- ``sft``: supervised baseline; only rows labelled safe, own response (unsafe/unlabelled dropped).
- ``isaac``: ``dynamic_sharpen`` as in the reference code, p = softmax(N / ((1 + 1e-3 - SI) tau)).
- ``isaac_paper``: the paper's form, p = softmax(N / (max(SI, 1e-3) tau)).
- ``exp``: p = softmax(N / tau).
- ``max``: all mass on the largest group.
- ``global``: ``isaac`` on one pool of every train row (groups/{assessor}-global): no neighbour
  search, so the neighbour pools are the only difference from ``isaac``. Every query draws from
  that one pool (indexed, never copied per query); its own response still decides the shortcut.

For the group methods (isaac, isaac_paper, exp, max, global) only the K largest groups are kept
(ties keep the group that appears first in the pool), SI = (N_1 - N_2) / max(N_1 - N_K', 1e-3)
(a single kept group has SI = 0), and the head shortcut copies the own response m times when it
lies in the largest group: mode ``reference`` exactly as the reference code (a tie for the top
keeps the first-seen group, so all-singleton pools copy the own response back), mode ``strict``
only when that group has >= 2 members and is strictly larger than the second. A pool whose query
row is absent cannot take the shortcut. Every array operation runs over all queries at once.

Randomness: two numpy Generators seeded from (seed, crc32(method), stream), one for group draws
and one for member draws, each drawing an (m, n_queries) block. So target j of a query uses the
same uniforms for every tau and every m >= j: curves over tau use common random numbers.
``global`` draws with ``isaac``'s generators, so the two differ by their pools only.
"""

from __future__ import annotations

import argparse
import logging
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from isaac.cli import optional, run
from isaac.io import InputError, train_rows, write_json, write_parquet
from isaac.pools import (
    GROUPS_PROVENANCE,
    Pools,
    group_sizes,
    groups_by_size,
    read_groups,
    read_groups_provenance,
)
from isaac.provenance import stamp
from isaac.runs import (
    GLOBAL_POOL_METHODS,
    GROUP_METHODS,
    POOL_METHODS,
    SAMPLED_METHODS,
    Run,
    add_run_arguments,
)
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.sample")

SHORTCUT_MODES = ("strict", "reference")
# `random` ignores groups; its SI column describes its pools over their 10 largest groups,
# a fixed definition so that no sample setting changes random's targets file.
RANDOM_SI_TOP_K = 10
SI_FLOOR = 1e-3
HEAD_SIZE_EDGES = (1, 2, 3, 4, 5, 6, 11, 21, 51, 101)


def stable_hash(text: str) -> int:
    """A process-independent hash (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def run_generators(seed: int, method: str) -> tuple[np.random.Generator, np.random.Generator]:
    """(group-draw, member-draw) generators derived only from the seed and the method name."""
    h = stable_hash(method)
    return np.random.default_rng([int(seed), h, 0]), np.random.default_rng([int(seed), h, 1])


def sharpen_indicator(sorted_sizes: np.ndarray, n_kept: np.ndarray) -> np.ndarray:
    """SI = (N_1 - N_2) / max(N_1 - N_K', 1e-3) per row of descending kept sizes; 0 for K' = 1."""
    sorted_sizes = np.atleast_2d(np.asarray(sorted_sizes, dtype=np.float64))
    n_kept = np.atleast_1d(n_kept)
    rows = np.arange(len(sorted_sizes))
    n1 = sorted_sizes[:, 0]
    n2 = np.where(n_kept >= 2, sorted_sizes[:, min(1, sorted_sizes.shape[1] - 1)], n1)
    nk = sorted_sizes[rows, n_kept - 1]
    return (n1 - n2) / np.maximum(n1 - nk, SI_FLOOR)


def group_probabilities(
    sorted_sizes: np.ndarray, n_kept: np.ndarray, method: str, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """(p, SI) over kept groups, rows of descending sizes; columns >= n_kept get p = 0.

    Log-sum-exp: logits minus their row maximum before exp, so sizes in the thousands are fine.
    """
    sizes = np.atleast_2d(np.asarray(sorted_sizes, dtype=np.float64))
    n_kept = np.atleast_1d(np.asarray(n_kept, dtype=np.int64))
    kept = np.arange(sizes.shape[1])[None, :] < n_kept[:, None]
    si = sharpen_indicator(np.where(kept, sizes, 0.0), n_kept)
    if method == "max":
        p = np.zeros_like(sizes)
        p[:, 0] = 1.0
        return p, si
    if method == "isaac":
        temperature = (1.0 + SI_FLOOR - si) * tau
    elif method == "isaac_paper":
        temperature = np.maximum(si, SI_FLOOR) * tau
    elif method == "exp":
        temperature = np.full(len(sizes), float(tau))
    else:
        raise ValueError(f"no group distribution for method {method!r}")
    logits = np.where(kept, sizes / temperature[:, None], -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True), si


def distribution(sizes: Sequence[float], method: str, tau: float, top_k: int) -> np.ndarray:
    """p over the K largest groups for one pool (sizes in any order) - the formula, for checks."""
    ordered = np.sort(np.asarray(sizes, dtype=np.float64))[::-1][:top_k]
    p, _ = group_probabilities(ordered[None, :], np.array([len(ordered)]), method, tau)
    return p[0]


def draw_members(
    group_ids: np.ndarray,
    valid: np.ndarray,
    counts: np.ndarray,
    group: np.ndarray,
    u_member,
    pool_of: np.ndarray,
) -> np.ndarray:
    """Pool positions (Q, m) of a uniform member of each drawn group (group: (m, Q) ids; query
    q draws from pool row pool_of[q])."""
    width = group_ids.shape[1]
    # members of each group in pool order: sort positions by (group, position)
    member_order = np.argsort(np.where(valid, group_ids, width), axis=1, kind="stable")
    group_start = np.cumsum(counts, axis=1) - counts
    pool = pool_of[None, :]
    n_members = counts[pool, group]
    r = np.minimum((u_member * n_members).astype(np.int64), n_members - 1)
    return member_order[pool, group_start[pool, group] + r].T


def head_shortcut_mask(
    group_ids, own_pos, counts, sizes, order, n_groups, head_shortcut: str, pool_of
) -> np.ndarray:
    """Queries whose own response lies in their pool's largest group and may be copied back
    (see module); query q's pool is row pool_of[q]."""
    n_pools, width = group_ids.shape
    pools = np.arange(n_pools)
    head = order[:, 0]
    own_group = np.where(own_pos >= 0, group_ids[pool_of, np.maximum(own_pos, 0)], -1)
    shortcut = own_group == head[pool_of]
    if head_shortcut == "strict":
        second = sizes[pools, order[:, 1]] if width > 1 else np.zeros(n_pools)
        second = np.where(n_groups >= 2, second, -np.inf)  # the pool's 2nd group, kept or not
        has_head = (counts[pools, head] >= 2) & (sizes[pools, head] > second)
        shortcut &= has_head[pool_of]
    elif head_shortcut != "reference":
        raise ValueError(f"head_shortcut must be one of {SHORTCUT_MODES}")
    return shortcut


def ranked_groups(group_ids: np.ndarray, valid: np.ndarray, weights: np.ndarray | None):
    """(counts, sizes, order, n_groups) of padded pools: each group's members and size (summed
    weight, or members), each pool's group ids largest first (groups_by_size), its groups."""
    pool_len = valid.sum(axis=1)
    if len(pool_len) and pool_len.min() < 1:
        raise ValueError("every pool needs at least one member")
    width = group_ids.shape[1]
    flat = np.asarray(group_ids, dtype=np.int64)[valid]
    counts = group_sizes(pool_len, flat, width=width)
    sizes = (
        counts.astype(np.float64)
        if weights is None
        else group_sizes(pool_len, flat, weights[valid], width)
    )
    return counts, sizes, groups_by_size(counts, sizes), (counts > 0).sum(axis=1)


def sample_pools(
    group_ids: np.ndarray,
    valid: np.ndarray,
    own_pos: np.ndarray,
    method: str,
    tau: float,
    m: int,
    rngs: tuple[np.random.Generator, np.random.Generator],
    top_k: int,
    head_shortcut: str | None,
    weights: np.ndarray | None = None,
    pool_of: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Draw m target positions per query, for all queries at once.

    group_ids: (P, L) canonical group ids of P pools (0.. by first appearance), anything where
    ~valid.
    pool_of: (Q,) the pool row each query draws from; by default query q draws from pool q.
    Queries sharing one pool (method global: every query, the whole train split) index it
    instead of copying it, so the group sizes and p are computed once per pool.
    own_pos: (Q,) position of the query's own response in its pool, -1 if absent.
    weights: (P, L) member weights (group size = summed weight) or None (size = count).
    head_shortcut: strict or reference (group methods; `random` never copies its own response).
    Returns positions (Q, m) into the pool, head_shortcut (Q,), si (Q,), n_groups (Q,),
    head_size (Q,) (size of the largest group).
    """
    if method not in POOL_METHODS:
        raise ValueError(f"sample_pools handles {POOL_METHODS}, not {method!r}")
    group_ids = np.where(valid, group_ids, 0).astype(np.int64)
    n_pools, width = group_ids.shape
    pool_of = np.arange(n_pools) if pool_of is None else np.asarray(pool_of, dtype=np.int64)
    q_n = len(pool_of)
    pool_len = valid.sum(axis=1)
    counts, sizes, order, n_groups = ranked_groups(group_ids, valid, weights)
    k = min(int(top_k), width)
    top = order[:, :k]
    top_sizes = np.take_along_axis(sizes, top, axis=1)
    n_kept = np.minimum(n_groups, k)
    out = {"n_groups": n_groups[pool_of], "head_size": top_sizes[pool_of, 0]}

    u_group = rngs[0].random((m, q_n))
    u_member = rngs[1].random((m, q_n))

    if method == "random":
        length = pool_len[pool_of]
        positions = np.minimum((u_member * length).astype(np.int64), length - 1).T
        si = sharpen_indicator(np.where(np.arange(k) < n_kept[:, None], top_sizes, 0), n_kept)
        return {
            **out,
            "positions": positions,
            "head_shortcut": np.zeros(q_n, dtype=bool),
            "si": si[pool_of],
        }

    p, si = group_probabilities(top_sizes, n_kept, method, tau)
    cdf = np.cumsum(p, axis=1)[pool_of]
    choice = (u_group[:, :, None] >= cdf[None, :, :]).sum(axis=2)  # (m, Q)
    choice = np.minimum(choice, n_kept[pool_of][None, :] - 1)  # guard: cdf rounding below 1
    group = top[pool_of[None, :], choice]  # (m, Q) canonical group ids
    positions = draw_members(group_ids, valid, counts, group, u_member, pool_of)
    shortcut = head_shortcut_mask(
        group_ids, own_pos, counts, sizes, order, n_groups, head_shortcut, pool_of
    )
    positions = np.where(shortcut[:, None], own_pos[:, None], positions)
    return {**out, "positions": positions, "head_shortcut": shortcut, "si": si[pool_of]}


def _summary(values: np.ndarray) -> dict | None:
    if values is None or len(values) == 0:
        return None
    values = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    edges = np.array([*HEAD_SIZE_EDGES, np.inf])
    hist, _ = np.histogram(values, bins=edges)
    names = ["min", "q10", "q25", "median", "q75", "q90", "max"]
    return {
        "mean": round(float(values.mean()), 6),
        "quantiles": {n: round(float(q), 6) for n, q in zip(names, quantiles)},
        "histogram": {
            "bins": [
                f"{lo}" if hi == lo + 1 else f"{lo}-{'' if hi == np.inf else int(hi) - 1}"
                for lo, hi in zip(HEAD_SIZE_EDGES, edges[1:])
            ],
            "counts": [int(c) for c in hist],
        },
        "singleton_share": round(float(np.mean(values <= 1.0)), 6),
    }


@dataclass(frozen=True)
class SampleConfig:
    """The sample section as one method reads it: the group methods use every key, the other
    methods none (each null)."""

    top_k_groups: int | None
    head_shortcut: str | None
    group_size: str | None


GROUP_SIZES = ("members", "distinct")


def distinct_response_weights(
    pools: Pools, group_ids: np.ndarray, responses: Sequence[str], weights: np.ndarray | None
) -> np.ndarray:
    """Flat member weights under which a group's size is its number of distinct responses:
    a member counts 1 / (copies of its normalised text in its group), times its assessor weight
    if any. Near-copies that differ only in case or spacing then make a group of one, not a
    head (DiaSafety has such pairs, each the head of every pool it falls in)."""
    text = pd.factorize(pd.Series([normalise(str(r)) for r in responses], dtype=object))[0]
    n_ids, n_texts = int(group_ids.max(initial=0)) + 1, int(text.max(initial=0)) + 1
    key = (pools.rows() * n_ids + group_ids) * n_texts + text[pools.index]
    _, inverse, copies = np.unique(key, return_inverse=True, return_counts=True)
    distinct = 1.0 / copies[inverse]
    return distinct if weights is None else distinct * weights


def safe_rate(safety_labels: pd.Series) -> float | None:
    """Share of 'safe' among labelled entries; None when nothing is labelled."""
    labelled = safety_labels.dropna()
    return float((labelled == "safe").mean()) if len(labelled) else None


def optional_column(train: pd.DataFrame, name: str) -> np.ndarray:
    """A train column as an object array with None for missing values (all None if absent):
    the labels and categories, which a corpus may lack."""
    if name not in train.columns:
        return np.full(len(train), None, dtype=object)
    values = train[name].astype(object)
    return values.where(values.notna(), None).to_numpy(dtype=object)


def polluted_rows(train: pd.DataFrame) -> np.ndarray:
    """Whether each train row was rewritten by the pollution protocol (none without it)."""
    if "polluted" not in train.columns:
        return np.zeros(len(train), dtype=bool)
    return train["polluted"].to_numpy(dtype=bool)


def own_targets(method: str, safety_label: pd.Series, m: int) -> tuple[np.ndarray, np.ndarray]:
    """raw and sft: (query rows, their own row m times); sft keeps the rows labelled safe."""
    rows = np.arange(len(safety_label))
    if method == "sft":
        rows = np.flatnonzero((safety_label == "safe").to_numpy())
        if len(rows) == 0:
            raise InputError("method sft needs rows labelled 'safe' in the train split")
    return rows, np.repeat(rows[:, None], m, axis=1)


def pool_queries(
    method: str, pools: Pools, members: np.ndarray, valid: np.ndarray, n_train: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, the pool row each draws from, its own response's position there or -1).

    A pool method's queries are its pools' own rows; a global-pool method's are every train
    row, all drawing from the table's one pool (which is never copied per query)."""
    if method not in GLOBAL_POOL_METHODS:
        own = np.where(valid & (members == pools.query[:, None]), np.arange(members.shape[1]), -1)
        own_pos = np.where((own >= 0).any(axis=1), np.where(own >= 0, own, np.inf).min(axis=1), -1)
        return pools.query, np.arange(len(pools)), own_pos.astype(np.int64)
    if len(pools) != 1:
        raise InputError(
            f"method {method} needs a groups table of one pool (groups/{{assessor}}-global), "
            f"not {len(pools)}"
        )
    rows, first = np.unique(members[0][valid[0]], return_index=True)
    own_pos = np.full(n_train, -1, dtype=np.int64)
    own_pos[rows] = first  # a row's first place in the pool
    return np.arange(n_train), np.zeros(n_train, dtype=np.int64), own_pos


def padded_groups(pools: Pools, group_ids: np.ndarray, weights: np.ndarray | None):
    """(members, valid, group ids, weights or None) of every pool as (pools, longest) arrays."""
    members, valid = pools.padded(0, len(pools))
    padded_ids = np.zeros(members.shape, dtype=np.int64)
    padded_ids[valid] = group_ids
    padded_weights = None
    if weights is not None:
        padded_weights = np.zeros(members.shape)
        padded_weights[valid] = weights
    return members, valid, padded_ids, padded_weights


def pool_targets(
    run: Run,
    config: SampleConfig,
    pools: Pools,
    group_ids: np.ndarray,
    weights: np.ndarray | None,
    n_train: int,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pool methods: (query rows, (Q, m) source rows, the sampler's per-query outputs).

    A global-pool method samples with the distribution and the random streams of the method it
    stands beside (isaac.runs.GLOBAL_POOL_METHODS), so that only the pools differ."""
    members, valid, padded_ids, w = padded_groups(pools, group_ids, weights)
    rows, pool_of, own_pos = pool_queries(run.method, pools, members, valid, n_train)
    distribution = GLOBAL_POOL_METHODS.get(run.method, run.method)
    out = sample_pools(
        padded_ids,
        valid,
        own_pos,
        distribution,
        run.tau,
        run.m,
        run_generators(run.seed, distribution),
        top_k=RANDOM_SI_TOP_K if run.method == "random" else config.top_k_groups,
        head_shortcut=config.head_shortcut,
        weights=w,
        pool_of=pool_of,
    )
    return rows, members[pool_of[:, None], out["positions"]], out


def example_columns(train: pd.DataFrame, rows) -> dict[str, pd.Series]:
    """id, prompt and response of the query rows: the first columns of targets and pairs."""
    return {
        name: pd.Series(
            train[name].astype(str if name == "id" else object).to_numpy()[rows], dtype=object
        )
        for name in ("id", "prompt", "response")
    }


def response_lists(train: pd.DataFrame, source) -> tuple[pd.Series, pd.Series]:
    """The texts and the ids of (Q, m) source rows: one list of m per query."""
    ids = train["id"].astype(str).to_numpy()
    responses = train["response"].to_numpy(dtype=object)
    return (
        pd.Series([list(x) for x in responses[source]], dtype=object),
        pd.Series([list(x) for x in ids[source]], dtype=object),
    )


def targets_table(train: pd.DataFrame, rows, source, shortcut, si, n_groups) -> pd.DataFrame:
    """targets/{run}.parquet: each query row with its m targets (texts and ids)."""
    targets, target_ids = response_lists(train, source)
    return pd.DataFrame(
        {
            **example_columns(train, rows),
            "targets": targets,
            "target_ids": target_ids,
            "head_shortcut": shortcut.astype(bool),
            "si": pd.Series(np.full(len(rows), np.nan) if si is None else si, dtype="float64"),
            "n_groups": pd.Series(
                [pd.NA] * len(rows) if n_groups is None else n_groups, dtype="Int64"
            ),
        }
    )


def check_settings(method: str, config: SampleConfig) -> None:
    """A method's settings are set exactly when it uses them, so its statistics record nothing
    else."""
    if method not in GROUP_METHODS:
        used = sorted(k for k, v in asdict(config).items() if v is not None)
        if used:
            raise InputError(f"--config: method {method} does not use {', '.join(used)} (null)")
        return
    if None in (config.top_k_groups, config.head_shortcut, config.group_size):
        raise InputError(f"method {method} needs top_k_groups, head_shortcut and group_size")
    if (
        config.top_k_groups < 1
        or config.head_shortcut not in SHORTCUT_MODES
        or config.group_size not in GROUP_SIZES
    ):
        raise InputError(
            f"--config: top_k_groups must be >= 1, head_shortcut one of "
            f"{', '.join(SHORTCUT_MODES)} and group_size one of {', '.join(GROUP_SIZES)}"
        )


def sample(
    run: Run,
    train: pd.DataFrame,
    config: SampleConfig,
    pools: Pools | None = None,
    group_ids: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    provenance: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """(targets table, stats) for one run. ``pools``/``group_ids``/``weights`` as read_groups
    gives; ``provenance``: what made the groups (read_groups_provenance), recorded for the pool
    methods."""
    if run.method not in SAMPLED_METHODS:
        raise InputError(
            f"method {run.method!r} has no targets (methods with targets: "
            f"{', '.join(SAMPLED_METHODS)})"
        )
    if run.m < 1 or not run.tau > 0:
        raise InputError(f"m must be >= 1 and tau > 0 (got m={run.m}, tau={run.tau})")
    check_settings(run.method, config)
    safety_label = pd.Series(optional_column(train, "label"), dtype=object)
    extra: dict = {"si": None, "n_groups": None, "head_size": None}
    if run.method in POOL_METHODS:
        if pools is None or group_ids is None:
            raise InputError(f"method {run.method} needs a groups table")
        if config.group_size == "distinct":
            weights = distinct_response_weights(pools, group_ids, train["response"], weights)
        rows, source, out = pool_targets(run, config, pools, group_ids, weights, len(train))
        shortcut = out["head_shortcut"]
        extra = {k: out[k] for k in extra}
    else:
        rows, source = own_targets(run.method, safety_label, run.m)
        shortcut = np.zeros(len(rows), dtype=bool)
    table = targets_table(train, rows, source, shortcut, extra["si"], extra["n_groups"])
    target_safety_labels = safety_label.to_numpy(dtype=object)[source.ravel()]
    polluted = polluted_rows(train)
    stats = {
        "n": int(len(rows)),
        "n_targets": int(source.size),
        "original_safe_rate": safe_rate(safety_label),
        "oracle_safe_rate": safe_rate(pd.Series(target_safety_labels, dtype=object)),
        "head_shortcut_share": float(shortcut.mean()) if len(rows) else 0.0,
        "polluted_share": float(polluted[source.ravel()].mean()) if source.size else 0.0,
        **safe_rates_by_category(
            train, safety_label, rows, target_safety_labels.reshape(source.shape)
        ),
        "mean_si": None if extra["si"] is None else float(np.mean(extra["si"])),
        "mean_n_groups": None if extra["n_groups"] is None else float(np.mean(extra["n_groups"])),
        "head_group_size": _summary(extra["head_size"]),
        "distinct_target_share": float(len(np.unique(source)) / max(len(train), 1)),
        "method": run.method,
        "tau": float(run.tau),
        "m": int(run.m),
        "seed": int(run.seed),
        **asdict(config),
        **(provenance or dict.fromkeys(GROUPS_PROVENANCE)),
    }
    return table, stats


def safe_rates_by_category(
    train: pd.DataFrame, safety_label: pd.Series, rows: np.ndarray, target_safety_labels: np.ndarray
) -> dict:
    """Per category of the query row: the oracle safe rate of its targets and of the original
    responses (where the long-tail assumption holds and where not; None without categories)."""
    category = train["category"] if "category" in train.columns else pd.Series(dtype=object)
    if category.isna().all():
        return {"oracle_safe_rate_by_category": None, "original_safe_rate_by_category": None}
    category = category.to_numpy(dtype=object)
    names = sorted({c for c in category if c is not None and not pd.isna(c)})
    query = category[np.asarray(rows, dtype=np.int64)]
    return {
        "oracle_safe_rate_by_category": {
            c: safe_rate(pd.Series(target_safety_labels[query == c].ravel(), dtype=object))
            for c in names
        },
        "original_safe_rate_by_category": {
            c: safe_rate(safety_label[category == c]) for c in names
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument(
        "--groups", type=optional(str), help="groups/{assessor}.parquet (methods with a pool)"
    )
    parser.add_argument(
        "--groups-stats",
        type=optional(str),
        help="groups/{assessor}.json: what made the groups (methods with a pool)",
    )
    add_run_arguments(parser, SAMPLED_METHODS)
    add_config_argument(parser, SampleConfig)
    parser.add_argument(
        "--out", required=True, help="targets/{method}/tau{tau}-m{m}-seed{seed}.parquet"
    )
    parser.add_argument("--stats", required=True, help="the JSON stats file")
    args = parser.parse_args(argv)
    run_ = Run.from_args(args)
    config = parse(SampleConfig, args.config)

    train = train_rows(args.corpus)
    pools = group_ids = weights = provenance = None
    if run_.method in POOL_METHODS:
        if not args.groups or not args.groups_stats:
            raise InputError(f"method {run_.method} needs --groups and --groups-stats")
        pools, group_ids, weights = read_groups(args.groups, train["id"].to_numpy())
        provenance = read_groups_provenance(args.groups_stats)
    table, stats = sample(run_, train, config, pools, group_ids, weights, provenance)
    write_parquet(table, args.out)
    write_json({**stats, **stamp()}, args.stats)
    log.info(
        "%s: n=%d oracle safe %s (original %s), shortcut %.3f",
        args.out,
        stats["n"],
        stats["oracle_safe_rate"],
        stats["original_safe_rate"],
        stats["head_shortcut_share"],
    )


if __name__ == "__main__":
    run(main)
