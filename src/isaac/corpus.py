"""The train rows of corpus.parquet: every pool, group and target comes from them."""

from __future__ import annotations

import pandas as pd

from isaac.io import InputError, read_table


def train_rows(corpus_path) -> pd.DataFrame:
    """The train split in corpus order, ids as text, missing texts as ""; unique ids checked."""
    corpus = read_table(corpus_path, ["id", "split", "prompt", "response"])
    train = corpus[corpus["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise InputError(f"{corpus_path}: no rows with split 'train'")
    if train["id"].duplicated().any():
        dup = train.loc[train["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"{corpus_path}: duplicate id {dup!r}")
    for column in ("prompt", "response"):
        train[column] = train[column].fillna("").astype(str)
    train["id"] = train["id"].astype(str)
    return train
