"""Text normalisation shared by the stages that compare response strings, and the word split
the scores count."""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")
# The words the scores count (distinct-n, mean length): a word or one other non-space symbol,
# so "can't" is three words here and one token of the regexp tokenizer (isaac.tokenize). The
# scores were defined with this split; tokenising them with the corpus tokenizer would move them.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def normalise(text: str, lowercase: bool = True, collapse_whitespace: bool = True) -> str:
    """The canonical form under which two responses count as the same string."""
    if collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text.lower() if lowercase else text


def words(text: str) -> list[str]:
    """Lower-cased WORD_PATTERN tokens: the words of generations that the scores count."""
    return WORD_PATTERN.findall(text.lower())
