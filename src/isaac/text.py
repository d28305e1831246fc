"""Text normalisation shared by the stages that compare response strings."""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")


def normalise(text: str, lowercase: bool = True, collapse_whitespace: bool = True) -> str:
    """The canonical form under which two responses count as the same string."""
    if collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text.lower() if lowercase else text
