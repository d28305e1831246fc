"""Shared entry-point wrapper: user errors become one clear line and exit status 2, a full disk
one line and exit status 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from isaac.io import InputError, NoSpaceError


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except NoSpaceError as err:
        print(f"error: {err.strerror}", file=sys.stderr)
        sys.exit(1)


def optional(kind):
    """argparse type for an input file a job may not need: "" (none given) becomes None."""

    def convert(text: str):
        return None if text == "" else kind(text)

    convert.__name__ = kind.__name__
    return convert
