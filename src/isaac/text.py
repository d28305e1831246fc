"""Text normalisation shared by the stages that compare response strings, the near-copy
threshold, and the word split the scores count."""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")
NEAR_COPY_RATIO = 90
"""rapidfuzz fuzz.ratio (100 x (1 - Indel distance / total length)) at or above which a
generation counts as a copy of a train response (isaac.score): about one edit per ten characters
(a changed letter or punctuation mark in a sentence), while different short replies ("yes" /
"yes sir") stay below. A property of the instrument, not of an experiment, so it is no setting."""
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
