"""Tokenise prompts and responses with an nltk tokenizer that needs no downloaded data.

`nltk.word_tokenize` needs the punkt models, which `nltk.download` cannot fetch offline, so the
pipeline uses the data-free Treebank tokenizer (default) or a regular-expression tokenizer.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from nltk.tokenize import RegexpTokenizer, TreebankWordTokenizer

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.text import normalise

log = logging.getLogger("isaac.tokens")

TOKENIZERS = ("treebank", "regexp")
# Words (with inner apostrophes/hyphens kept together) or runs of other non-space symbols.
REGEXP_PATTERN = r"\w+(?:['\-]\w+)*|[^\w\s]+"


def make_tokenizer(
    name: str = "treebank", lowercase: bool = True, collapse_whitespace: bool = True
) -> Callable[[str], list[str]]:
    """Return text -> tokens; normalisation happens first so the options change every token."""
    if name == "treebank":
        split = TreebankWordTokenizer().tokenize
    elif name == "regexp":
        split = RegexpTokenizer(REGEXP_PATTERN).tokenize
    else:
        raise InputError(f"tokenizer: unknown name {name!r} (choose from {', '.join(TOKENIZERS)})")

    def tokenize(text: str) -> list[str]:
        text = normalise(text or "", lowercase=lowercase, collapse_whitespace=collapse_whitespace)
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


def tokenize_corpus(
    corpus: pd.DataFrame,
    tokenizer: str = "treebank",
    lowercase: bool = True,
    collapse_whitespace: bool = True,
) -> pd.DataFrame:
    """Token lists for every row of every split (later stages pick the split they need)."""
    tok = make_tokenizer(tokenizer, lowercase, collapse_whitespace)
    return pd.DataFrame(
        {
            "id": corpus["id"].astype(str).to_numpy(),
            "prompt_tokens": tokenize_texts(corpus["prompt"].tolist(), tok),
            "response_tokens": tokenize_texts(corpus["response"].tolist(), tok),
        }
    )


def token_lists(column: pd.Series) -> list[list[str]]:
    """A tokens.parquet list column as plain Python lists (pyarrow reads numpy arrays)."""
    return [list(x) for x in column]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isaac.tokens", description=__doc__)
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--out", required=True, help="tokens.parquet to write")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="treebank")
    parser.add_argument("--lowercase", choices=("true", "false"), default="true")
    parser.add_argument("--collapse-whitespace", choices=("true", "false"), default="true")
    args = parser.parse_args(argv)
    corpus = read_table(args.corpus, ["id", "prompt", "response"])
    tokens = tokenize_corpus(
        corpus,
        tokenizer=args.tokenizer,
        lowercase=args.lowercase == "true",
        collapse_whitespace=args.collapse_whitespace == "true",
    )
    write_parquet(tokens, args.out)
    log.info("tokenised %d rows -> %s", len(tokens), args.out)


if __name__ == "__main__":
    run(main)
