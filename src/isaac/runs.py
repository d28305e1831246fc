"""Sampling methods and run ids: the one declaration the workflow, the stages and the report use.

A run is one point of the sweep, (method, tau, m, seed), filed as
"{method}/tau{tau}-m{m}-seed{seed}". Methods that never look at tau run once per (m, seed) and
are filed under tau 1.0.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

METHODS = (
    "raw",
    "random",
    "sft",
    "constant",
    "isaac",
    "isaac_paper",
    "exp",
    "max",
    "global",
    "isaac_dpo",
    "oracle_dpo",
)
# Methods that sample from the groups of a pool, and those that draw from its whole pool.
GROUP_METHODS = ("isaac", "isaac_paper", "exp", "max", "global")
POOL_METHODS = ("random", *GROUP_METHODS)
# global draws every train example's targets from one pool, the whole train split
# (groups/{assessor}-global), with the group distribution of the method it stands beside:
# the same sampler on other pools, so the neighbour pools are the only difference.
GLOBAL_POOL_METHODS = {"global": "isaac"}
# constant answers every prompt with one reply: no targets, no model (a rule of its own).
MODEL_FREE_METHODS = ("constant",)
TRAINED_METHODS = tuple(m for m in METHODS if m not in MODEL_FREE_METHODS)
# Preference pairs (isaac.pairs, pairs/{run}) instead of targets: each pair method with the method
# whose draw gives its chosen responses (None: oracle_dpo chooses by the labels). Its model is
# trained with DPO (isaac.dpo) from the model of the DPO_START run of the same m and seed.
PAIR_METHODS = {"isaac_dpo": "isaac", "oracle_dpo": None}
DPO_START = "raw"
# The methods whose runs sample targets (and are fine-tuned on them).
SAMPLED_METHODS = tuple(m for m in TRAINED_METHODS if m not in PAIR_METHODS)
# max puts all mass on the largest group whatever tau, so a sweep runs it once (at tau 1), and so
# does oracle_dpo, whose pairs are chosen by the labels.
TAU_FREE_METHODS = ("raw", "random", "sft", "constant", "max", "oracle_dpo")
# Label-free baselines drawn as reference lines beside the group methods' curves over tau.
REFERENCE_METHODS = ("raw", "random")

RUN = "{method}/tau{tau}-m{m}-seed{seed}"
# Tempering (train.rounds): round r of a run trains on the targets sampled with this seed.
ROUND_SEED_STEP = 1000


# The largest seed a run can use: training seeds numpy's legacy generator, which takes 32 bits.
SEED_MAX = 2**32 - 1


def round_seed(seed: int, round_: int) -> int:
    """The sampling seed of a run's round (round 1 = the run's own targets)."""
    return int(seed) + ROUND_SEED_STEP * (int(round_) - 1)


def round_seed_clash(seeds, rounds: int) -> str | None:
    """Why the sweep's seeds cannot each temper over `rounds` rounds on draws of their own (a
    later round's seed is another run's seed, or above SEED_MAX), or None when they can."""
    seeds = sorted(set(seeds))
    for low in seeds:
        for high in seeds:
            step, rest = divmod(high - low, ROUND_SEED_STEP)
            if high > low and rest == 0 and step < rounds:
                return (
                    f"seeds {low} and {high}: round {step + 1} of seed {low} would train on the "
                    f"targets of seed {high} (round r samples with seed + "
                    f"{ROUND_SEED_STEP} (r - 1))"
                )
    last = round_seed(seeds[-1], rounds)
    if last > SEED_MAX:
        return f"seed {seeds[-1]}: round {rounds} would sample with seed {last}, above {SEED_MAX}"
    return None


def method_pattern(methods) -> str:
    """A regular expression matching exactly these method names (longest first)."""
    return "|".join(sorted(methods, key=len, reverse=True))


# Snakemake wildcard constraints of the run id's parts.
WILDCARD_PATTERNS = {
    "method": method_pattern(METHODS),
    "tau": r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",
    "m": r"[0-9]+",
    "seed": r"[0-9]+",
}


def fmt_tau(tau) -> str:
    """One spelling per temperature, so 1 and 1.0 name the same file."""
    return repr(float(tau))


def run_ids(methods, taus, ms, seeds) -> list[str]:
    """Run ids in sweep order, tau-free methods once per (m, seed) under tau 1.0."""
    ids: list[str] = []
    for method in methods:
        for tau in [1.0] if method in TAU_FREE_METHODS else taus:
            for m in ms:
                for seed in seeds:
                    run = RUN.format(method=method, tau=fmt_tau(tau), m=m, seed=seed)
                    if run not in ids:
                        ids.append(run)
    return ids


def run_method(run_id: str) -> str:
    """The method of a run id."""
    return run_id.split("/", 1)[0]


@dataclass(frozen=True)
class Run:
    """The wildcards of one run, as a stage receives them."""

    method: str
    tau: float
    m: int
    seed: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Run:
        return cls(args.method, args.tau, args.m, args.seed)


def add_run_arguments(parser: argparse.ArgumentParser, methods=METHODS) -> None:
    """--method (one of `methods`), --tau, --m, --seed: the run's wildcards."""
    parser.add_argument("--method", required=True, choices=methods)
    parser.add_argument("--tau", required=True, type=float)
    parser.add_argument("--m", required=True, type=int)
    parser.add_argument("--seed", required=True, type=int)
