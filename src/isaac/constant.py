"""Answer every test prompt with one generic reply: the `constant` baseline.

The reply is chosen without labels: the most frequent train response after
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


def constant_reply(responses: Sequence[str]) -> str:
    """The most frequent normalised response (first in order on ties), as first spelled."""
    codes, _ = pd.factorize(pd.Series([normalise(str(r)) for r in responses], dtype=object))
    # factorize numbers texts by first occurrence, so argmax's first maximum is the tie-break
    best = int(np.argmax(np.bincount(codes)))
    return str(responses[int(np.flatnonzero(codes == best)[0])])


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
