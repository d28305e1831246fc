"""Answer every test prompt with one generic reply: the `constant` baseline.

The reply is chosen without labels: the most frequent non-empty train response after
``isaac.text.normalise`` (ties: the one that occurs first in corpus order), written as its first
occurrence is spelled. Nothing is trained; the generations table has the generate stage's
columns (the prompts table's, plus ``generation``), so the score and summary stages read it
as any run's.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table, train_rows, write_parquet
from isaac.text import normalise

log = logging.getLogger("isaac.constant")


def frequent_responses(responses: Sequence[str], n: int) -> pd.DataFrame:
    """The n most frequent non-empty responses after normalisation, most frequent first (ties:
    the one that occurs first): `key` (normalised), `response` (as first spelled), `count`."""
    texts = pd.Series(list(responses), dtype=object).fillna("").astype(str)
    # factorize numbers texts by first occurrence, so a stable sort by count breaks ties by it
    codes, keys = pd.factorize(texts.map(normalise))
    first = np.unique(codes, return_index=True)[1]
    table = pd.DataFrame(
        {"key": keys, "response": texts.to_numpy()[first], "count": np.bincount(codes)}
    )
    table = table[table["key"] != ""].sort_values("count", ascending=False, kind="stable")
    return table.head(n).reset_index(drop=True)


def constant_reply(responses: Sequence[str]) -> str:
    """The most frequent normalised non-empty response (first in order on ties), as first
    spelled."""
    top = frequent_responses(responses, 1)
    if top.empty:
        raise InputError("every train response is empty: there is no reply to repeat")
    return str(top["response"].iloc[0])


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="corpus.parquet (its train responses)")
    p.add_argument("--prompts", required=True, help="prompts.parquet")
    p.add_argument("--out", required=True, help="generations/constant/{run}.parquet")
    args = p.parse_args(argv)
    table = read_table(args.prompts, ["id", "prompt", "seen"])
    if table.empty:
        raise InputError(f"{args.prompts}: no prompts")
    reply = constant_reply(train_rows(args.corpus)["response"].tolist())
    table["generation"] = reply
    write_parquet(table, args.out)
    log.info("%d prompts answered %r -> %s", len(table), reply, args.out)


if __name__ == "__main__":
    run(main)
