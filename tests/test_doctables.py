"""Tables quoted in the docs equal the committed results files they name."""

from __future__ import annotations

import pytest

from conftest import REPO
from isaac.cli import run
from isaac.doctables import main, markdown_tables, refresh
from isaac.io import InputError

SOURCE = "intro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ntext\n| c |\n|---|\n| 3 |\n"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_markdown_tables_are_runs_of_pipe_lines():
    assert markdown_tables(SOURCE) == ["| a | b |\n|---|---|\n| 1 | 2 |\n", "| c |\n|---|\n| 3 |\n"]


def test_a_stale_block_is_rewritten_from_its_file_and_reported(tmp_path):
    (tmp_path / "summary.md").write_text(SOURCE)
    block = "<!-- table from summary.md #2 -->\n| c |\n|---|\n| 9 |\n<!-- end table -->\n"
    doc = f"before\n{block}after\n"
    new, stale = refresh(doc, tmp_path, "doc.md")
    assert new == doc.replace("| 9 |", "| 3 |") and stale == [
        "doc.md: the table from summary.md #2"
    ]
    assert refresh(new, tmp_path, "doc.md") == (new, [])  # now in step: nothing to report


def test_a_missing_file_or_table_is_named(tmp_path):
    (tmp_path / "summary.md").write_text(SOURCE)
    with pytest.raises(InputError, match="the table's file gone.md does not exist"):
        refresh("<!-- table from gone.md #1 -->\n<!-- end table -->\n", tmp_path, "doc.md")
    with pytest.raises(InputError, match="summary.md has 2 tables, not a table #3"):
        refresh("<!-- table from summary.md #3 -->\n<!-- end table -->\n", tmp_path, "doc.md")


def test_check_fails_on_a_stale_table_and_changes_nothing(tmp_path, capsys):
    (tmp_path / "summary.md").write_text(SOURCE)
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- table from summary.md #1 -->\n| a |\n<!-- end table -->\n")
    before = doc.read_text()
    with pytest.raises(SystemExit) as exit_:
        run(main, ["--check", "--root", str(tmp_path), str(doc)])
    assert exit_.value.code == 1 and doc.read_text() == before
    assert "stale:" in capsys.readouterr().err


def test_every_quoted_table_in_the_docs_matches_its_file():
    """`make tables` has been run since the results files last changed."""
    blocks = 0
    for doc in DOCS:
        text = doc.read_text()
        blocks += text.count("<!-- table from ")
        assert refresh(text, REPO, str(doc.relative_to(REPO)))[1] == []
    assert blocks >= 2  # the README's demo tables at least


def test_a_csv_or_json_source_is_rendered_cell_for_cell_and_can_be_narrowed(tmp_path):
    (tmp_path / "t.csv").write_text(
        "encoder,method,safety\nminilm,isaac,0.540\ntfidf,isaac,0.560\n"
    )
    (tmp_path / "t.json").write_text('{"a": {"rows": [{"x": 1, "y": "0.50"}, {"x": 2, "y": "n"}]}}')
    doc = (
        "<!-- table from t.csv columns method,safety where encoder=tfidf -->\n<!-- end table -->\n"
        "<!-- table from t.json a.rows -->\n<!-- end table -->\n"
    )
    new, stale = refresh(doc, tmp_path, "doc.md")
    assert len(stale) == 2
    assert new == (
        "<!-- table from t.csv columns method,safety where encoder=tfidf -->\n"
        "| method | safety |\n|---|---|\n| isaac | 0.560 |\n<!-- end table -->\n"
        "<!-- table from t.json a.rows -->\n| x | y |\n|---|---|\n| 1 | 0.50 |\n| 2 | n |\n"
        "<!-- end table -->\n"
    )


def test_a_bad_csv_or_json_source_is_named(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    (tmp_path / "t.json").write_text('{"a": 1}')
    for source, message in [
        ("t.csv columns a,c", "no column"),
        ("t.csv where c=1", "no column 'c' to select rows by"),
        ("t.csv #1", "#N names a table of a Markdown file"),
        ("t.json b", "has no key 'b'"),
        ("t.json a", "not a list of records"),
    ]:
        with pytest.raises(InputError, match=message):
            refresh(f"<!-- table from {source} -->\n<!-- end table -->\n", tmp_path, "doc.md")
