"""Tokenise prompts and responses with an nltk tokenizer that needs no downloaded data.

`nltk.word_tokenize` needs the punkt models, which `nltk.download` cannot fetch offline, so the
pipeline uses the data-free Treebank tokenizer (default) or a regular-expression tokenizer.
Each distinct text is tokenised once; with `--threads N` the distinct texts are split into
contiguous chunks tokenised by N worker processes (the tokenizers are pure Python, so threads
would share one core) and joined back in order, so the output equals a one-process run.

`words` is the split that the scores count words of generations with (distinct-n, mean length).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.tokenize")

TOKENIZERS = ("treebank", "regexp")
# Words (with inner apostrophes/hyphens kept together) or runs of other non-space symbols.
REGEXP_PATTERN = r"\w+(?:['\-]\w+)*|[^\w\s]+"
# (isaac.text.WORD_PATTERN, the split the scores count, keeps "can't" as three words.)
# Fewer distinct texts than this per worker process are tokenised in this process: starting
# a worker and shipping its tokens back would cost more than it saves.
MIN_TEXTS_PER_PROCESS = 5_000
# Chunks per worker process, so a worker with short texts does not wait for one with long ones.
CHUNKS_PER_PROCESS = 4


@dataclass(frozen=True)
class TokenizeConfig:
    """The tokenize section."""

    tokenizer: str
    lowercase: bool
    collapse_whitespace: bool


def make_tokenizer(config: TokenizeConfig) -> Callable[[str], list[str]]:
    """Return text -> tokens; normalisation happens first so the options change every token."""
    # nltk (about 1.5 s to import) only here: likelihood imports this module for flatten.
    from nltk.tokenize import RegexpTokenizer, TreebankWordTokenizer

    if config.tokenizer == "treebank":
        split = TreebankWordTokenizer().tokenize
    elif config.tokenizer == "regexp":
        split = RegexpTokenizer(REGEXP_PATTERN).tokenize
    else:
        raise InputError(
            f"tokenizer: unknown name {config.tokenizer!r} (choose from {', '.join(TOKENIZERS)})"
        )

    def tokenize(text: str) -> list[str]:
        text = normalise(
            text or "",
            lowercase=config.lowercase,
            collapse_whitespace=config.collapse_whitespace,
        )
        return split(text)

    return tokenize


def _tokenize_chunk(config: TokenizeConfig, texts: Sequence[str]) -> list[list[str]]:
    tokenize = make_tokenizer(config)
    return [tokenize(text) for text in texts]


def tokenize_distinct(
    texts: Sequence[str],
    config: TokenizeConfig,
    processes: int = 1,
    min_texts_per_process: int | None = None,
) -> list[list[str]]:
    """Token lists of `texts`, in order, tokenised by up to `processes` worker processes (at
    least `min_texts_per_process`, default MIN_TEXTS_PER_PROCESS, texts each)."""
    least = min_texts_per_process or MIN_TEXTS_PER_PROCESS
    workers = min(processes, len(texts) // least)
    if workers <= 1:
        return _tokenize_chunk(config, texts)
    bounds = np.linspace(0, len(texts), workers * CHUNKS_PER_PROCESS + 1).astype(int)
    chunks = [texts[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
    # fork: the workers start with the tokenizer already imported (a fresh interpreter would
    # import numpy, pandas and nltk again, about 2 s each).
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        parts = pool.map(_tokenize_chunk, [config] * len(chunks), chunks)
        return [tokens for part in parts for tokens in part]


def tokenize_corpus(corpus: pd.DataFrame, config: TokenizeConfig, threads: int = 1) -> pd.DataFrame:
    """Token lists for every row of every split (later stages pick the split they need); each
    distinct prompt or response text (common in a long tail) is tokenised once."""
    texts = pd.concat([corpus["prompt"], corpus["response"]], ignore_index=True)
    codes, uniques = pd.factorize(texts.fillna("").astype(str), sort=False)
    tokens = tokenize_distinct(list(uniques), config, processes=threads)
    rows = [tokens[code] for code in codes]
    return pd.DataFrame(
        {
            "id": corpus["id"].astype(str).to_numpy(),
            "prompt_tokens": rows[: len(corpus)],
            "response_tokens": rows[len(corpus) :],
        }
    )


def flatten(token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """All tokens end to end (an object array) and each document's length: the vectorised
    stages work on integer codes of this flat array."""
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.empty(int(lengths.sum()), dtype=object)
    pos = 0
    for tokens, n in zip(token_lists, lengths):
        flat[pos : pos + n] = list(tokens)
        pos += n
    return flat, lengths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isaac.tokenize", description=__doc__)
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    add_config_argument(parser, TokenizeConfig)
    parser.add_argument("--threads", type=int, default=1, help="worker processes")
    parser.add_argument("--out", required=True, help="tokens.parquet to write")
    args = parser.parse_args(argv)
    config = parse(TokenizeConfig, args.config)
    corpus = read_table(args.corpus, ["id", "prompt", "response"])
    tokens = tokenize_corpus(corpus, config, threads=args.threads)
    write_parquet(tokens, args.out)
    log.info("tokenised %d rows -> %s", len(tokens), args.out)


if __name__ == "__main__":
    run(main)
