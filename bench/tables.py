"""Shared by the experiment scripts in bench/: one table written as CSV and as Markdown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_table(df: pd.DataFrame, columns: dict[str, str], stem: str | Path) -> str:
    """`df` to {stem}.csv (every column) and {stem}.md, whose columns are the keys of `columns`
    and whose cells are their format strings filled from each row (e.g. "{safety:.3f}")."""
    df.to_csv(f"{stem}.csv", index=False, float_format="%.6g")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell.format(**row) for cell in columns.values()) + " |")
    text = "\n".join(lines) + "\n"
    Path(f"{stem}.md").write_text(text)
    return text
