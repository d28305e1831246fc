"""Tables in the docs copied from the committed results files they quote, never typed by hand.

A table in README.md or docs/*.md that quotes a results file sits between two marker comments
naming that file (relative to the repository root) and what of it to show:

    <!-- table from docs/results/demo/summary.md #2 -->
    | method | ... |
    <!-- end table -->

- `FILE.md #N`: the N-th Markdown table of a page the workflow or a benchmark wrote;
- `FILE.csv`: the whole CSV, each cell as its file spells it (the writer rounds);
- `FILE.json KEY`: the list of records at KEY (dotted for nested keys) of a JSON file.

A CSV or JSON source may be narrowed by ` columns a,b,c` (in that order) and ` where col=value`
(rows whose cell equals value), in that order, e.g.
`<!-- table from docs/results/x.csv columns method,safety where encoder=minilm -->`.

`python -m isaac.doctables README.md docs/*.md` rewrites every such block from its file;
`--check` changes nothing and fails, naming each stale block, when a doc differs from what its
files say (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from isaac.cli import run
from isaac.io import InputError

BLOCK = re.compile(
    r"^<!-- table from (?P<source>[^\n]+?) -->\n(?P<body>.*?)^<!-- end table -->$", re.S | re.M
)
SOURCE = re.compile(
    r"(?P<path>\S+)(?: #(?P<index>\d+))?(?: (?!columns |where )(?P<key>\S+))?"
    r"(?: columns (?P<columns>\S+))?(?: where (?P<where_column>[^=\s]+)=(?P<where_value>\S+))?"
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


def quoted_table(root: Path, source: str, where: str) -> str:
    """The Markdown table a marker's `source` (see the module docstring) names."""
    spec = SOURCE.fullmatch(source)
    if spec is None:
        raise InputError(f"{where}: cannot read the table source {source!r}")
    path = spec["path"]
    file = root / path
    if not file.is_file():
        raise InputError(f"{where}: the table's file {path} does not exist")
    if path.endswith(".md"):
        if spec["index"] is None or spec["key"] or spec["columns"] or spec["where_column"]:
            raise InputError(f"{where}: a Markdown source is named as FILE.md #N, not {source!r}")
        tables = markdown_tables(file.read_text())
        index = int(spec["index"])
        if not 1 <= index <= len(tables):
            raise InputError(f"{where}: {path} has {len(tables)} tables, not a table #{index}")
        return tables[index - 1]
    if spec["index"] is not None:
        raise InputError(f"{where}: #N names a table of a Markdown file, not of {path}")
    return table_markdown(records(file, spec["key"], where), spec, where)


def records(file: Path, key: str | None, where: str) -> pd.DataFrame:
    """The rows of a CSV file, or of the list of records at `key` in a JSON file, as text."""
    if file.suffix == ".csv":
        if key:
            raise InputError(f"{where}: a CSV source takes no key ({key!r})")
        return pd.read_csv(file, dtype=str, keep_default_na=False)
    if file.suffix != ".json":
        raise InputError(f"{where}: {file.name}: a table comes from .md, .csv or .json")
    value = json.loads(file.read_text())
    for part in (key or "").split(".") if key else []:
        if not isinstance(value, dict) or part not in value:
            raise InputError(f"{where}: {file.name} has no key {key!r}")
        value = value[part]
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise InputError(f"{where}: {file.name} {key or ''}: not a list of records")
    return pd.DataFrame(value).astype(str)


def table_markdown(rows: pd.DataFrame, spec: re.Match, where: str) -> str:
    if spec["where_column"]:
        if spec["where_column"] not in rows:
            raise InputError(f"{where}: no column {spec['where_column']!r} to select rows by")
        rows = rows[rows[spec["where_column"]] == spec["where_value"]]
    if spec["columns"]:
        columns = spec["columns"].split(",")
        missing = [c for c in columns if c not in rows]
        if missing:
            raise InputError(f"{where}: no column(s) {', '.join(missing)} in {spec['path']}")
        rows = rows[columns]
    lines = ["| " + " | ".join(rows.columns) + " |", "|" + "---|" * len(rows.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def refresh(text: str, root: Path, where: str) -> tuple[str, list[str]]:
    """`text` with every marked block rewritten from its file, and the blocks that changed."""
    stale = []

    def rewrite(match: re.Match) -> str:
        source = match["source"]
        table = quoted_table(root, source, where)
        if table != match["body"]:
            stale.append(f"{where}: the table from {source}")
        return f"<!-- table from {source} -->\n{table}<!-- end table -->"

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
