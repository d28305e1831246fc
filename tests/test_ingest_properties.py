"""Property-based ingest: arbitrary Unicode, control characters, very long fields, empty files
and wrong types, in every input format. Each example is either ingested with its text intact
or refused with an InputError that names the file, and then nothing is written."""

from __future__ import annotations

import csv
import json
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st

from conftest import property_settings
from isaac.ingest import main
from isaac.io import InputError
from isaac.settings import to_json
from test_ingest import corpus_config

PROPERTY = property_settings(HealthCheck.too_slow)

# Any Unicode text (control characters, combining marks, RTL, NUL included), some of it very
# long (100 000 characters and more).
TEXT = st.one_of(st.text(max_size=40), st.text(min_size=1, max_size=3).map(lambda t: t * 50_000))
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
ROWS = st.lists(st.tuples(TEXT, TEXT), max_size=5)
# In the JSON formats, maybe one value of a wrong type: (row, prompt or response, value).
SPOIL = st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, 1), WRONG_TYPES))


def spoiled(rows: list[tuple], spoil) -> list[tuple]:
    if spoil is None or not rows:
        return rows
    row, column, value = spoil
    rows = [list(r) for r in rows]
    rows[row % len(rows)][column] = value
    return [tuple(r) for r in rows]


def usable(text) -> bool:
    """What ingest must accept as a prompt or response: text with something besides spaces."""
    return isinstance(text, str) and text.strip() != ""


def ingest_or_refuse(fmt: str, path: Path, out: Path, **overrides) -> pd.DataFrame | str:
    """The corpus table, or the message of an InputError naming `path` with no output written."""
    config = corpus_config(fmt, path, **{"default_split": "train", **overrides})
    try:
        main(["--config", to_json(config), "--out", str(out)])
    except InputError as err:
        assert str(path) in str(err), str(err)
        assert not out.exists() and list(out.parent.glob(f".{out.name}*")) == []
        return str(err)
    return pd.read_parquet(out)


def check(fmt: str, path: Path, out: Path, rows: list[tuple]) -> None:
    """Every row usable -> ingested with each text intact, in order; any unusable -> refused."""
    corpus = ingest_or_refuse(fmt, path, out)
    event("refused" if isinstance(corpus, str) else "ingested")
    if rows and all(usable(p) and usable(r) for p, r in rows):
        assert not isinstance(corpus, str), corpus
        assert list(zip(corpus["prompt"], corpus["response"])) == rows
    else:
        assert isinstance(corpus, str), rows


@pytest.fixture
def folder():
    """A fresh folder per example (tmp_path would be shared by all of a test's examples)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@PROPERTY
@given(rows=ROWS, spoil=SPOIL)
def test_jsonl(rows, spoil):
    rows = spoiled(rows, spoil)
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "in.jsonl"
        path.write_text(
            "".join(
                json.dumps({"prompt": p, "response": r}, ensure_ascii=False) + "\n" for p, r in rows
            ),
            encoding="utf-8",
        )
        check("jsonl", path, Path(name) / "out" / "corpus.parquet", rows)


@PROPERTY
@given(rows=ROWS, line_end=st.sampled_from(["\r\n", "\n"]))
def test_csv(rows, line_end):
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "in.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator=line_end)
            writer.writerow(["prompt", "response"])
            writer.writerows(rows)
        check("csv", path, Path(name) / "out" / "corpus.parquet", rows)


@PROPERTY
@given(rows=ROWS, wrong=st.sampled_from([None, 7, 2.5, True]))
def test_parquet(rows, wrong):
    """Text columns, then the same rows with the response column of another type."""
    with tempfile.TemporaryDirectory() as name:
        for responses in ([r for _, r in rows], [wrong] * len(rows)):
            path = Path(name) / "in.parquet"
            pd.DataFrame(
                {
                    "prompt": pd.Series([p for p, _ in rows], dtype=object),
                    "response": pd.Series(responses, dtype=object),
                }
            ).to_parquet(path)
            out = Path(name) / "out" / "corpus.parquet"
            check("parquet", path, out, [(p, r) for (p, _), r in zip(rows, responses)])
            out.unlink(missing_ok=True)


@PROPERTY
@given(rows=ROWS, spoil=SPOIL)
def test_diasafety(rows, spoil):
    """Every split file holds the rows (ids differ per split): all three intact, or refused."""
    rows = spoiled(rows, spoil)
    with tempfile.TemporaryDirectory() as name:
        data = Path(name) / "diasafety"
        data.mkdir()
        for split in ("train", "val", "test"):
            items = [
                {"context": p, "response": r, "category": "x", "label": "Safe"} for p, r in rows
            ]
            (data / f"{split}.json").write_text(json.dumps(items, ensure_ascii=False))
        out = Path(name) / "out" / "corpus.parquet"
        corpus = ingest_or_refuse("diasafety", data, out)
        event("refused" if isinstance(corpus, str) else "ingested")
        if rows and all(usable(p) and usable(r) for p, r in rows):
            assert not isinstance(corpus, str), corpus
            assert list(zip(corpus["prompt"], corpus["response"])) == rows * 3
        else:
            assert isinstance(corpus, str)


@PROPERTY
@given(items=st.lists(st.tuples(TEXT, st.lists(TEXT, max_size=3)), max_size=4), spoil=SPOIL)
def test_diasafety_generations(items, spoil):
    """A context and its list of responses; a spoiled list is a value of another type."""
    if spoil is not None and items:
        row, column, value = spoil
        items = [list(i) for i in items]
        items[row % len(items)][column] = value
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "gen.json"
        path.write_text(
            json.dumps([{"context": c, "gen_response": g} for c, g in items], ensure_ascii=False)
        )
        rows = [(c, r) for c, g in items for r in (g if isinstance(g, list) else [None])]
        check("diasafety_generations", path, Path(name) / "out" / "corpus.parquet", rows)


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("jsonl", "in.jsonl"),
        ("csv", "in.csv"),
        ("parquet", "in.parquet"),
        ("diasafety", "diasafety"),
        ("diasafety_generations", "gen.json"),
    ],
)
def test_an_empty_input_is_refused_naming_it(folder, fmt, name):
    path = folder / name
    if fmt == "diasafety":
        path.mkdir()
        for split in ("train", "val", "test"):
            (path / f"{split}.json").write_bytes(b"")
    else:
        path.write_bytes(b"")
    assert isinstance(ingest_or_refuse(fmt, path, folder / "out" / "corpus.parquet"), str)


# --------------------------------------------------------------------------- text that is not
# what it seems

USABLE = TEXT.filter(usable)
SPLIT = st.sampled_from(["train", "val", "test"])
# Every character str.strip() removes: a response of these alone is empty.
WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def write_table(fmt: str, path: Path, header: list[str], rows: list[tuple], encoding: str) -> None:
    """`rows` as CSV (a proper writer) or JSONL in `encoding`."""
    with path.open("w", encoding=encoding, newline="") as fh:
        if fmt == "csv":
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        else:
            for row in rows:
                fh.write(json.dumps(dict(zip(header, row)), ensure_ascii=False) + "\n")


@PROPERTY
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    rows=st.lists(st.tuples(SPLIT, USABLE, USABLE), min_size=1, max_size=4),
)
def test_a_byte_order_mark_leaves_the_first_column_and_every_text_intact(fmt, rows):
    """The split column comes first, where a BOM used to rename it and every row became train."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / f"in.{fmt}"
        write_table(fmt, path, ["split", "prompt", "response"], rows, "utf-8-sig")
        corpus = ingest_or_refuse(fmt, path, Path(name) / "out" / "corpus.parquet")
        assert not isinstance(corpus, str), corpus
        assert list(zip(corpus["split"], corpus["prompt"], corpus["response"])) == rows


NO_QUOTING = st.text(st.characters(blacklist_characters='",\r\n'), min_size=1, max_size=20)


@PROPERTY
@given(
    rows=st.lists(st.tuples(NO_QUOTING, NO_QUOTING), min_size=1, max_size=5),
    stray=st.integers(0, 4),
)
def test_a_quote_never_closed_is_refused_at_its_line_not_read_as_one_value(rows, stray):
    """One response starts with a quote that nothing closes: a lenient reader made it swallow
    every row after it. Refused, naming the line where the quote opens."""
    stray %= len(rows)
    lines = ["prompt,response"] + [f"{p},{r}" for p, r in rows]
    lines[stray + 1] = f'{rows[stray][0]},"{rows[stray][1]}'
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "in.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        message = ingest_or_refuse("csv", path, Path(name) / "out" / "corpus.parquet")
        assert isinstance(message, str), rows
        assert re.search(rf"\blines? {stray + 2}\b.*malformed CSV", message), message


@PROPERTY
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    name=st.text(min_size=1, max_size=10).filter(str.strip),
    rows=st.lists(st.tuples(USABLE, USABLE), min_size=1, max_size=3),
)
def test_a_column_or_key_named_twice_is_refused_naming_it(fmt, name, rows):
    """The last value used to win silently."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in.{fmt}"
        if fmt == "csv":
            write_table(
                fmt, path, ["prompt", "response", name, name], [(*r, 1, 2) for r in rows], "utf-8"
            )
        else:
            twice = f"{json.dumps(name)}: 1, {json.dumps(name)}: 2"
            path.write_text(
                "".join(
                    f'{{"prompt": {json.dumps(p)}, "response": {json.dumps(r)}, {twice}}}\n'
                    for p, r in rows
                ),
                encoding="utf-8",
            )
        message = ingest_or_refuse(fmt, path, Path(folder) / "out" / "corpus.parquet")
        assert isinstance(message, str)
        assert "line 1" in message and "twice" in message, message
        assert repr(name) in message, message


@PROPERTY
@given(
    rows=st.lists(st.tuples(USABLE, USABLE), min_size=1, max_size=4),
    where=st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(0, 40)),
    surrogate=st.integers(0xD800, 0xDFFF).map(chr),
)
def test_a_lone_surrogate_is_refused_naming_its_line_and_field(rows, where, surrogate):
    """JSON can spell half a UTF-16 pair (\\ud800); it used to end in a traceback when the
    corpus was written."""
    row, column, at = where
    row %= len(rows)
    spoilt = [list(r) for r in rows]
    text = spoilt[row][column]
    spoilt[row][column] = text[: at % (len(text) + 1)] + surrogate + text[at % (len(text) + 1) :]
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "in.jsonl"
        path.write_text(
            "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in spoilt),
            encoding="utf-8",
        )
        message = ingest_or_refuse("jsonl", path, Path(name) / "out" / "corpus.parquet")
        assert isinstance(message, str)
        field = ("prompt", "response")[column]
        assert f"line {row + 1}: field '{field}' holds a lone surrogate" in message, message


@PROPERTY
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    rows=st.lists(
        st.tuples(USABLE, st.one_of(USABLE, st.text(st.sampled_from(WHITESPACE), max_size=5))),
        min_size=1,
        max_size=5,
    ),
)
def test_keep_stores_a_whitespace_only_response_as_empty(fmt, rows):
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / f"in.{fmt}"
        write_table(fmt, path, ["prompt", "response"], rows, "utf-8")
        out = Path(name) / "out" / "corpus.parquet"
        corpus = ingest_or_refuse(fmt, path, out, empty_responses="keep")
        assert not isinstance(corpus, str), corpus
        expected = [(p, r if usable(r) else "") for p, r in rows]
        assert list(zip(corpus["prompt"], corpus["response"])) == expected
