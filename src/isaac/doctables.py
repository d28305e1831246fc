"""Tables in the docs copied from the committed results files they quote, never typed by hand.

A table in README.md or docs/*.md that quotes a results file sits between two marker comments
naming that file (relative to the repository root) and which of its Markdown tables it is:

    <!-- table from docs/results/demo/summary.md #2 -->
    | method | ... |
    <!-- end table -->

`python -m isaac.doctables README.md docs/*.md` rewrites every such block from its file;
`--check` changes nothing and fails, naming each stale block, when a doc differs from what its
files say (the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from isaac.cli import run
from isaac.io import InputError

BLOCK = re.compile(
    r"^<!-- table from (?P<path>\S+) #(?P<index>\d+) -->\n(?P<body>.*?)^<!-- end table -->$",
    re.S | re.M,
)


def markdown_tables(text: str) -> list[str]:
    """The Markdown tables of `text` in order: runs of consecutive lines starting with "|"."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current) + "\n")
            current = []
    if current:
        tables.append("\n".join(current) + "\n")
    return tables


def quoted_table(root: Path, path: str, index: int, where: str) -> str:
    source = root / path
    if not source.is_file():
        raise InputError(f"{where}: the table's file {path} does not exist")
    tables = markdown_tables(source.read_text())
    if not 1 <= index <= len(tables):
        raise InputError(f"{where}: {path} has {len(tables)} tables, not a table #{index}")
    return tables[index - 1]


def refresh(text: str, root: Path, where: str) -> tuple[str, list[str]]:
    """`text` with every marked block rewritten from its file, and the blocks that changed."""
    stale = []

    def rewrite(match: re.Match) -> str:
        path, index = match["path"], int(match["index"])
        table = quoted_table(root, path, index, where)
        if table != match["body"]:
            stale.append(f"{where}: the table from {path} #{index}")
        return f"<!-- table from {path} #{index} -->\n{table}<!-- end table -->"

    return BLOCK.sub(rewrite, text), stale


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Copy quoted tables into the docs from their files.")
    p.add_argument("docs", nargs="+", help="Markdown files (README.md docs/*.md)")
    p.add_argument("--root", default=".", help="the repository root the marker paths start at")
    p.add_argument("--check", action="store_true", help="change nothing; fail if a table is stale")
    args = p.parse_args(argv)
    stale = []
    for doc in map(Path, args.docs):
        text = doc.read_text()
        new, changed = refresh(text, Path(args.root), str(doc))
        stale += changed
        if changed and not args.check:
            doc.write_text(new)
    for line in stale:
        print(("stale: " if args.check else "rewrote: ") + line, file=sys.stderr)
    if stale and args.check:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
