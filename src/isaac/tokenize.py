"""Tokenise prompts and responses with an nltk tokenizer that needs no downloaded data.

`nltk.word_tokenize` needs the punkt models, which `nltk.download` cannot fetch offline, so the
pipeline uses the data-free Treebank tokenizer (default) or a regular-expression tokenizer.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nltk.tokenize import RegexpTokenizer, TreebankWordTokenizer

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.settings import add_config_argument, parse
from isaac.text import normalise

log = logging.getLogger("isaac.tokenize")

TOKENIZERS = ("treebank", "regexp")
# Words (with inner apostrophes/hyphens kept together) or runs of other non-space symbols.
REGEXP_PATTERN = r"\w+(?:['\-]\w+)*|[^\w\s]+"


@dataclass(frozen=True)
class TokenizeConfig:
    """The tokenize slice."""

    tokenizer: str
    lowercase: bool
    collapse_whitespace: bool


def make_tokenizer(config: TokenizeConfig) -> Callable[[str], list[str]]:
    """Return text -> tokens; normalisation happens first so the options change every token."""
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


def tokenize_texts(texts: Iterable[str], tokenizer: Callable[[str], list[str]]) -> list[list[str]]:
    """Tokenise many texts; identical strings (common in a long tail) are tokenised once."""
    cache: dict[str, list[str]] = {}
    out = []
    for text in texts:
        tokens = cache.get(text)
        if tokens is None:
            tokens = cache[text] = tokenizer(text)
        out.append(tokens)
    return out


def tokenize_corpus(corpus: pd.DataFrame, config: TokenizeConfig) -> pd.DataFrame:
    """Token lists for every row of every split (later stages pick the split they need)."""
    tok = make_tokenizer(config)
    return pd.DataFrame(
        {
            "id": corpus["id"].astype(str).to_numpy(),
            "prompt_tokens": tokenize_texts(corpus["prompt"].tolist(), tok),
            "response_tokens": tokenize_texts(corpus["response"].tolist(), tok),
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
    parser.add_argument("--out", required=True, help="tokens.parquet to write")
    args = parser.parse_args(argv)
    config = parse(TokenizeConfig, args.config)
    corpus = read_table(args.corpus, ["id", "prompt", "response"])
    tokens = tokenize_corpus(corpus, config)
    write_parquet(tokens, args.out)
    log.info("tokenised %d rows -> %s", len(tokens), args.out)


if __name__ == "__main__":
    run(main)
