"""The prompts every run answers: the test split's distinct contexts, by default only those that
no train context matches.

Contexts are compared after ``isaac.text.normalise`` (lower case, whitespace collapsed). On
DiaSafety 42% of test contexts also occur in train; scoring them would partly measure prompts a
model was trained on, so ``generate.prompts: unseen`` (the default) keeps only the others and
``all`` keeps both, marked by the ``seen`` column. Each distinct context is answered once (its
first test row by id), and every run answers the same prompts in the same order.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.prompts")
SUBSETS = ("unseen", "all")


@dataclass(frozen=True)
class PromptsConfig:
    """The prompts section: which test contexts (unseen or all), the first n_prompts of them
    (null = every one)."""

    select: str
    n_prompts: int | None


def held_out_rows(corpus: pd.DataFrame, where="corpus") -> pd.DataFrame:
    """The test rows by id, each with `key` (its normalised context) and `seen` (in train)."""
    train_keys = set(corpus.loc[corpus["split"] == "train", "prompt"].astype(str).map(normalise))
    test = corpus[corpus["split"] == "test"].sort_values("id", kind="stable")
    if test.empty:
        raise InputError(f"{where}: no rows with split 'test' to generate for")
    key = test["prompt"].astype(str).map(normalise)
    return test.assign(key=key, seen=key.isin(train_keys)).reset_index(drop=True)


def select_prompts(corpus: pd.DataFrame, config: PromptsConfig, where="corpus") -> pd.DataFrame:
    """id, prompt, seen: one row per distinct test context of the configured subset."""
    if config.select not in SUBSETS:
        raise InputError(f"prompts.select: {config.select!r} is not one of {', '.join(SUBSETS)}")
    distinct = held_out_rows(corpus, where).drop_duplicates("key", keep="first")
    test = distinct[~distinct["seen"]] if config.select == "unseen" else distinct
    if config.n_prompts is not None:
        test = test.head(config.n_prompts)
    # Safety is scored on unseen prompts only (seen ones are a second, labelled subset), so a
    # selection without one would fail after every model is trained: refuse it here.
    if not (~test["seen"]).any():
        why = (
            "every test context also occurs in train"
            if distinct["seen"].all()
            else f"the first {len(test)} test contexts all occur in train: raise "
            "prompts.n_prompts or set prompts.select: unseen"
        )
        raise InputError(
            f"{where}: no selected test prompt is unseen in train, and safety is "
            f"scored on unseen prompts ({why})"
        )
    return pd.DataFrame(
        {
            "id": test["id"].astype(str).to_numpy(),
            "prompt": test["prompt"].astype(str).to_numpy(),
            "seen": test["seen"].to_numpy(dtype=bool),
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    add_config_argument(parser, PromptsConfig)
    parser.add_argument("--out", required=True, help="prompts.parquet")
    args = parser.parse_args(argv)
    config = parse(PromptsConfig, args.config)
    corpus = read_table(args.corpus, ["id", "split", "prompt"])
    prompts = select_prompts(corpus, config, args.corpus)
    write_parquet(prompts, args.out)
    n_test = int((corpus["split"] == "test").sum())
    log.info(
        "%d prompts (%d seen in train) from %d test rows -> %s",
        len(prompts),
        int(prompts["seen"].sum()),
        n_test,
        args.out,
    )


if __name__ == "__main__":
    run(main)
