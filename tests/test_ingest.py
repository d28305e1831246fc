"""Readers, field mapping, stable ids, and every kind of bad input (named file, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac.ingest import (
    CORPUS_COLUMNS,
    CorpusConfig,
    ingest,
    main,
    parse_label,
    prompt_group,
    read_corpus,
    read_jsonl,
)
from isaac.io import InputError
from isaac.settings import to_json


def corpus_config(fmt: str, path=None, fields: dict | None = None, **overrides) -> CorpusConfig:
    """The corpus section as the workflow hands it to ingest: schema defaults (pollution off),
    this format and path, and a field mapping over the schema's default mapping."""
    return settings(
        CorpusConfig,
        "corpus",
        format=fmt,
        path=None if path is None else str(path),
        fields={**schema_defaults("corpus")["fields"], **(fields or {})},
        **overrides,
    )


def write_diasafety(folder: Path, items: dict[str, list[dict]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    default = {
        "train": [
            {"context": "hi", "response": "Hello!", "category": "Offending User", "label": "Safe"},
            {
                "context": "you suck",
                "response": "Yes I do",
                "category": "Offending User",
                "label": "Unsafe",
            },
        ],
        "val": [{"context": "a", "response": "b", "category": "Risk Ignorance", "label": "Safe"}],
        "test": [
            {"context": "c", "response": "d", "category": "Biased Opinion", "label": "Unsafe"}
        ],
    }
    for split, rows in {**default, **(items or {})}.items():
        (folder / f"{split}.json").write_text(json.dumps(rows))
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def assert_nothing_written(folder: Path) -> None:
    assert list(folder.iterdir()) == [], sorted(p.name for p in folder.iterdir())


def expect_error(tmp_path: Path, config: CorpusConfig | str, *fragments: str) -> str:
    """Run the CLI entry point on bad input (a config or its JSON text): InputError naming the
    file, and no output."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    text = config if isinstance(config, str) else to_json(config)
    with pytest.raises(InputError) as err:
        main(["--config", text, "--out", str(out_dir / "corpus.parquet")])
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert_nothing_written(out_dir)
    return message


# --------------------------------------------------------------------------- readers


def test_diasafety_reader_maps_fields_and_numbers_ids_per_split(tmp_path):
    df = ingest(corpus_config("diasafety", write_diasafety(tmp_path / "ds")))
    assert list(df.columns) == CORPUS_COLUMNS
    assert df["id"].tolist() == ["train-00000", "train-00001", "val-00000", "test-00000"]
    assert df["split"].tolist() == ["train", "train", "val", "test"]
    assert df["prompt"].tolist() == ["hi", "you suck", "a", "c"]
    assert df["label"].tolist() == ["safe", "unsafe", "safe", "unsafe"]
    assert df["prompt_group"].isna().all()
    assert df.loc[0, "category"] == "Offending User"


def test_jsonl_reader_with_field_mapping_generated_ids_and_default_split(tmp_path):
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"q": "hi", "a": "hello", "y": "SAFE"},
            {"q": "hey", "a": "go away", "y": 1},
            {"q": "yo", "a": "sup", "y": None},
            {"q": "hm", "a": "ok", "y": "0", "part": "test"},
        ],
    )
    fields = {"prompt": "q", "response": "a", "label": "y", "split": "part", "category": None}
    df = ingest(corpus_config("jsonl", path, fields, default_split="val"))
    assert df["id"].tolist() == [f"data-{i:06d}" for i in range(4)]
    assert df["label"].tolist() == ["safe", "unsafe", None, "safe"]
    assert df["split"].tolist() == ["val", "val", "val", "test"]
    assert df["category"].isna().all()
    # Same input -> same ids.
    assert ingest(corpus_config("jsonl", path, fields, default_split="val")).equals(df)


def test_jsonl_reader_uses_the_id_and_group_fields(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"uid": "x1", "prompt": "p", "response": "r1", "g": "p1"},
            {"uid": "x2", "prompt": "p", "response": "r2", "g": "p1"},
        ],
    )
    df = ingest(corpus_config("jsonl", path, {"id": "uid", "prompt_group": "g"}))
    assert df["id"].tolist() == ["x1", "x2"]
    assert df["prompt_group"].tolist() == ["p1", "p1"]
    assert df["label"].isna().all()  # no label column at all: unlabelled corpus
    assert df["split"].tolist() == ["train", "train"]


def test_csv_reader_handles_quoted_newlines_and_split_spellings(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'prompt,response,label,split\nhi,"hello,\nthere",Unsafe,validation\nNA,ok,,TEST\n',
        encoding="utf-8",
    )
    df = ingest(corpus_config("csv", path))
    assert df["response"].tolist() == ["hello,\nthere", "ok"]
    assert df["prompt"].tolist() == ["hi", "NA"]  # "NA" is text, not a missing value
    assert df["label"].tolist() == ["unsafe", None]
    assert df["split"].tolist() == ["val", "test"]


def test_parquet_reader(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(
        {"id": [3, 4], "prompt": ["a", "b"], "response": ["c", "d"], "label": [1.0, None]}
    ).to_parquet(path)
    df = ingest(corpus_config("parquet", path, {"id": "id"}))
    assert df["id"].tolist() == ["3", "4"]
    assert df["label"].tolist() == ["unsafe", None]


def test_generations_reader_one_row_per_response_grouped_by_context(tmp_path):
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "b_model.json").write_text(
        json.dumps(
            [
                {"context": "ctx one", "gen_response": ["r1", "r2"]},
                {"context": "ctx two", "gen_response": ["r3"]},
            ]
        )
    )
    (folder / "a_model.json").write_text(
        json.dumps([{"context": "ctx one", "gen_response": ["r4"]}])
    )
    df = ingest(corpus_config("diasafety_generations", folder, default_split="val"))
    assert df["id"].tolist() == [
        "a_model-00000-00",
        "b_model-00000-00",
        "b_model-00000-01",
        "b_model-00001-00",
    ]
    assert df["response"].tolist() == ["r4", "r1", "r2", "r3"]
    assert df["prompt_group"].tolist() == [prompt_group("ctx one")] * 3 + [prompt_group("ctx two")]
    assert df["label"].isna().all() and (df["split"] == "val").all()
    single = ingest(corpus_config("diasafety_generations", folder / "a_model.json"))
    assert single["id"].tolist() == ["a_model-00000-00"]


@pytest.mark.parametrize(
    "value,expected",
    [
        ("Safe", "safe"),
        (" UNSAFE ", "unsafe"),
        ("0", "safe"),
        ("1", "unsafe"),
        (0, "safe"),
        (1, "unsafe"),
        (1.0, "unsafe"),
        (None, None),
        ("", None),
        (float("nan"), None),
    ],
)
def test_accepted_label_values(value, expected):
    assert parse_label(value, "f") == expected


@pytest.mark.parametrize("value", ["toxic", 2, True, "yes"])
def test_rejected_label_values(value):
    with pytest.raises(InputError, match="invalid label|boolean"):
        parse_label(value, "f")


# --------------------------------------------------------------------------- bad input


def test_missing_file_and_folder(tmp_path):
    expect_error(
        tmp_path, corpus_config("jsonl", tmp_path / "nope.jsonl"), "nope.jsonl", "not found"
    )
    expect_error(tmp_path, corpus_config("diasafety", tmp_path / "nodir"), "nodir", "not found")
    folder = write_diasafety(tmp_path / "ds")
    (folder / "val.json").unlink()
    expect_error(tmp_path, corpus_config("diasafety", folder), "val.json", "not found")


def test_missing_field_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"}])
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "line 2", "'response'")
    folder = write_diasafety(tmp_path / "ds", {"test": [{"context": "c", "label": "Safe"}]})
    expect_error(tmp_path, corpus_config("diasafety", folder), "test.json", "item 0", "'response'")
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("prompt,answer\na,b\n")
    expect_error(tmp_path, corpus_config("csv", csv_path), "d.csv", "'response'")


def test_empty_prompt_or_response(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "  ", "response": "b"}]
    )
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "line 2", "empty prompt")
    path = write_jsonl(
        tmp_path / "e.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "a", "response": " \n"}]
    )
    expect_error(tmp_path, corpus_config("jsonl", path), "e.jsonl", "line 2", "empty response")
    keep = ingest(corpus_config("jsonl", path, empty_responses="keep"))
    assert keep["response"].tolist() == ["b", ""]  # kept as "", as the schema says
    drop = ingest(corpus_config("jsonl", path, empty_responses="drop"))
    assert drop["response"].tolist() == ["b"]


def test_invalid_label(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b", "label": "meh"}])
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "line 1", "invalid label 'meh'")
    folder = write_diasafety(
        tmp_path / "ds", {"val": [{"context": "a", "response": "b", "label": "Maybe"}]}
    )
    expect_error(
        tmp_path, corpus_config("diasafety", folder), "val.json", "item 0", "invalid label"
    )


def test_invalid_split(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b", "split": "x"}])
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "invalid split")


def test_duplicate_ids(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "prompt": "p", "response": "r"},
            {"id": "b", "prompt": "p", "response": "r"},
            {"id": "a", "prompt": "p", "response": "r"},
        ],
    )
    expect_error(
        tmp_path,
        corpus_config("jsonl", path, {"id": "id"}),
        "d.jsonl",
        "duplicate id 'a'",
        "line 1",
        "line 3",
    )


def test_bytes_that_are_not_utf8(tmp_path):
    good = b'{"prompt": "a", "response": "b"}\n'
    path = tmp_path / "d.jsonl"
    path.write_bytes(good + b'{"prompt": "caf\xe9", "response": "b"}\n')
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "line 2", "not UTF-8")
    csv_path = tmp_path / "d.csv"
    csv_path.write_bytes(b"prompt,response\na,b\nc,\xff\xfe\n")
    expect_error(tmp_path, corpus_config("csv", csv_path), "d.csv", "line 3", "not UTF-8")
    folder = write_diasafety(tmp_path / "ds")
    (folder / "train.json").write_bytes(b'[{"context": "\xff"}]')
    expect_error(tmp_path, corpus_config("diasafety", folder), "train.json", "not UTF-8")


def test_malformed_json(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": \n')
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "line 2", "malformed JSON")
    folder = write_diasafety(tmp_path / "ds")
    (folder / "test.json").write_text('[{"context": "a",\n "response": }]')
    expect_error(
        tmp_path, corpus_config("diasafety", folder), "test.json", "line 2", "malformed JSON"
    )
    gen = tmp_path / "gen.json"
    gen.write_text('[{"context": "a", "gen_response": ["x"]')
    expect_error(
        tmp_path, corpus_config("diasafety_generations", gen), "gen.json", "malformed JSON"
    )


def test_bad_generations_item(tmp_path):
    gen = tmp_path / "gen.json"
    gen.write_text(json.dumps([{"context": "a", "gen_response": "just one string"}]))
    expect_error(
        tmp_path,
        corpus_config("diasafety_generations", gen),
        "gen.json",
        "item 0",
        "list of strings",
    )


def test_unknown_field_names_are_rejected(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}])
    expect_error(
        tmp_path,
        corpus_config("jsonl", path, {"answer": "b", "question": "a"}),
        "corpus.fields: unknown field(s) answer, question",
    )


def test_unknown_format_and_missing_path(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}])
    expect_error(tmp_path, corpus_config("xml", path), "corpus.format", "unknown format 'xml'")
    expect_error(tmp_path, corpus_config("jsonl"), "corpus.path", "required for format 'jsonl'")


def test_read_corpus_returns_the_rows_before_validation(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "a", "response": " "}]
    )
    config = corpus_config("jsonl", path, default_split="test")
    rows = read_corpus(config)
    pd.testing.assert_frame_equal(rows, read_jsonl(path, config.fields, "test"))
    assert rows["response"].tolist() == ["b", " "] and (rows["split"] == "test").all()
    with pytest.raises(InputError, match="empty response"):
        ingest(config)  # the whole-table checks run in ingest, after reading


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isaac.ingest", *args], capture_output=True, text=True
    )


def test_cli_reports_the_error_and_exits_2(tmp_path):
    out = tmp_path / "corpus.parquet"
    config = corpus_config("jsonl", tmp_path / "missing.jsonl")
    proc = run_cli("--config", to_json(config), "--out", str(out))
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "missing.jsonl" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "change,fragments",
    [
        pytest.param(
            lambda c: c.pop("empty_responses"),
            ["--config", "missing key(s) empty_responses"],
            id="missing",
        ),
        pytest.param(
            lambda c: c.update(name="demo"), ["--config", "unknown key(s) name"], id="unknown"
        ),
        pytest.param(
            lambda c: c.update(demo=None), ["corpus.demo", "required for format 'demo'"], id="null"
        ),
        pytest.param(
            lambda c: c["demo"].pop("val_fraction"),
            ["--config.demo", "missing key(s) val_fraction"],
            id="missing-demo-key",
        ),
        pytest.param(
            lambda c: c["demo"].update(size=3),
            ["--config.demo", "unknown key(s) size"],
            id="unknown-demo-key",
        ),
    ],
)
def test_cli_config_must_hold_exactly_the_corpus_keys(tmp_path, change, fragments):
    config = json.loads(to_json(corpus_config("demo")))
    change(config)
    out = tmp_path / "corpus.parquet"
    proc = run_cli("--config", json.dumps(config), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_rejects_malformed_config_json(tmp_path):
    expect_error(tmp_path, '{"format": "demo",', "--config", "malformed JSON")


def test_cli_writes_identical_bytes_twice(tmp_path):
    folder = write_diasafety(tmp_path / "ds")
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for out in outs:
        main(["--config", to_json(corpus_config("diasafety", folder)), "--out", str(out)])
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert pd.read_parquet(outs[0])["id"].is_unique


# --------------------------------------------------------------------------- real data


def test_diasafety_counts(diasafety_dir):
    df = ingest(corpus_config("diasafety", diasafety_dir, empty_responses="keep"))
    assert len(df) == 11_209
    train = df[df["split"] == "train"]
    assert len(train) == 9_017
    assert (train["label"] == "unsafe").sum() == 4_178
    assert df.groupby("split").size().to_dict() == {"test": 1_095, "train": 9_017, "val": 1_097}
    assert df["id"].is_unique
    assert set(df["category"]) == {
        "Offending User",
        "Risk Ignorance",
        "Unauthorized Expertise",
        "Biased Opinion",
        "Toxicity Agreement",
    }
    # The real files have three empty responses: the default policy refuses them by name.
    with pytest.raises(InputError, match=r"train\.json: item 3928: empty response"):
        ingest(corpus_config("diasafety", diasafety_dir))


def test_diasafety_generations_real_format(diasafety_dir):
    path = diasafety_dir / "generations" / "plato_base_val.json"
    df = ingest(corpus_config("diasafety_generations", path, empty_responses="drop"))
    assert len(df) > 10_000 and df["id"].is_unique
    sizes = df.groupby("prompt_group").size()
    assert sizes.max() >= 10  # ten samples per context (duplicated contexts pool together)


# --------------------------------------------------------------------------- text that is not
# what it seems: every case is read correctly or refused naming the file (and line or item)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    """Spreadsheet programs start a CSV with a BOM; it used to rename the first column, so the
    split column (here the first) was lost and every row became train."""
    path = tmp_path / "d.csv"
    path.write_text("split,prompt,response\ntest,a,b\ntrain,c,d\n", encoding="utf-8-sig")
    df = ingest(corpus_config("csv", path))
    assert df["split"].tolist() == ["test", "train"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"prompt": "a", "response": "b", "split": "val"}\n', encoding="utf-8-sig")
    assert ingest(corpus_config("jsonl", jsonl))["split"].tolist() == ["val"]
    folder = write_diasafety(tmp_path / "ds")
    plain = ingest(corpus_config("diasafety", folder))
    train = folder / "train.json"
    train.write_text(train.read_text(), encoding="utf-8-sig")
    pd.testing.assert_frame_equal(ingest(corpus_config("diasafety", folder)), plain)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_are_refused_by_their_byte_order_mark(tmp_path, encoding):
    path = tmp_path / "d.csv"
    path.write_text("prompt,response\na,b\n", encoding=encoding)
    expect_error(
        tmp_path, corpus_config("csv", path), "d.csv", encoding.upper(), "save it as UTF-8"
    )


@pytest.mark.parametrize(
    "header, column",
    [("prompt,response,Label", "Label"), ("prompt,response, split", " split")],
)
def test_a_column_that_differs_from_the_mapping_only_in_case_or_spaces_is_refused(
    tmp_path, header, column
):
    path = tmp_path / "d.csv"
    path.write_text(f"{header}\na,b,unsafe\n")
    expect_error(tmp_path, corpus_config("csv", path), "d.csv", repr(column), "corpus.fields.")


def test_a_mapped_column_that_differs_by_an_invisible_character_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b", "\u200blabel": "1"}])
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl", "corpus.fields.label")
    path = tmp_path / "r.csv"
    path.write_text("prompt,Response\na,b\n")
    expect_error(tmp_path, corpus_config("csv", path), "r.csv", "'Response'", "fields.response")


def test_an_optional_column_the_file_lacks_altogether_is_absent(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt,response,notes\na,b,x\n")
    df = ingest(corpus_config("csv", path, default_split="val"))
    assert df["label"].isna().all() and df["split"].tolist() == ["val"]


@pytest.mark.parametrize(
    "text, lines",
    [
        pytest.param('prompt,response\na,"b\nc,d\ne,f\n', "lines 2-4", id="never-closed"),
        pytest.param('prompt,response\na,"b" c\nc,d\n', "line 2", id="text-after-closing"),
        pytest.param(
            'prompt,response\na,"she said \\"hi\\""\nc,d\n', "line 2", id="backslash-escaped"
        ),
    ],
)
def test_a_stray_quote_is_refused_with_its_line(tmp_path, text, lines):
    """These used to swallow the rows after the quote into one value ("wrote 1 rows" for 3) or
    drop quote characters."""
    path = tmp_path / "d.csv"
    path.write_text(text)
    expect_error(tmp_path, corpus_config("csv", path), "d.csv", f"{lines}: malformed CSV")


def test_quotes_inside_an_unquoted_value_and_quoted_line_breaks_are_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('prompt,response\na,5" tall\nb,"one, ""two""\nthree"\n')
    df = ingest(corpus_config("csv", path))
    assert df["response"].tolist() == ['5" tall', 'one, "two"\nthree']


def test_a_column_named_twice_in_the_header_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt,response,label,response\na,b,safe,c\n")
    expect_error(
        tmp_path,
        corpus_config("csv", path),
        "d.csv: line 1: column 'response' twice in the header (columns 2 and 4)",
    )
    blank = tmp_path / "e.csv"  # trailing empty header cells, as spreadsheets export them
    blank.write_text("prompt,response,,\na,b,,\n")
    assert ingest(corpus_config("csv", blank))["response"].tolist() == ["b"]


def test_a_key_twice_in_one_json_object_is_refused_with_its_line_or_item(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "b", "response": "c"}\n'
    )
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl: line 2: key 'response' twice")
    folder = write_diasafety(tmp_path / "ds")
    (folder / "val.json").write_text(
        '[{"context": "a", "response": "b", "label": "Safe"},\n'
        ' {"context": "a", "response": "b", "label": "Safe", "label": "Unsafe"}]'
    )
    expect_error(
        tmp_path, corpus_config("diasafety", folder), "val.json: item 1: key 'label' twice"
    )
    gen = tmp_path / "gen.json"
    gen.write_text('[{"context": "a", "gen_response": [{"x": 1, "x": 2}]}]')
    expect_error(
        tmp_path, corpus_config("diasafety_generations", gen), "gen.json: item 0: key 'x' twice"
    )


def test_the_header_again_inside_a_csv_is_refused(tmp_path):
    """Two exported files joined with `cat` (the second with its BOM) repeat the header."""
    path = tmp_path / "d.csv"
    path.write_bytes(b"prompt,response\na,b\n\xef\xbb\xbfprompt,response\nc,d\n")
    expect_error(tmp_path, corpus_config("csv", path), "d.csv: line 3: the header again")


def test_a_csv_with_another_separator_is_refused_saying_so(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt;response\na;b\n")
    expect_error(tmp_path, corpus_config("csv", path), "d.csv: line 1", "separated by commas")


JSON_PYTHON_CANNOT_HOLD = [
    pytest.param('"\\ud800"', "lone surrogate", id="lone-surrogate"),
    pytest.param("1" * 5000, "a number of 5000 digits", id="long-integer"),
    pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep-nesting"),
    pytest.param("NaN", "NaN is not JSON", id="nan"),
]


@pytest.mark.parametrize("value, fragment", JSON_PYTHON_CANNOT_HOLD)
def test_json_python_cannot_hold_is_one_line_naming_the_line(tmp_path, value, fragment):
    """These ended in a Python traceback (exit status 1), or for NaN a silent unlabelled row."""
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "a", "response": "b"}\n'
        f'{{"prompt": "a", "response": {value}, "label": {value}}}\n'
    )
    out = tmp_path / "corpus.parquet"
    proc = run_cli("--config", to_json(corpus_config("jsonl", path)), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: {path}: line 2: " in proc.stderr and fragment in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("value, fragment", JSON_PYTHON_CANNOT_HOLD)
def test_json_python_cannot_hold_in_a_json_file_names_the_file(tmp_path, value, fragment):
    gen = tmp_path / "gen.json"
    gen.write_text(f'[{{"context": "a", "gen_response": ["b", {value}]}}]')
    expect_error(tmp_path, corpus_config("diasafety_generations", gen), "gen.json", fragment)


@pytest.mark.parametrize("line", ["[1, 2]", '"a, b"', "null", "3"])
def test_a_jsonl_line_that_is_not_an_object_is_refused_with_its_line(tmp_path, line):
    path = tmp_path / "d.jsonl"
    path.write_text(f'{{"prompt": "a", "response": "b"}}\n{line}\n')
    expect_error(tmp_path, corpus_config("jsonl", path), "d.jsonl: line 2: expected a JSON object")


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_csv_line_ends_lf_crlf_and_cr_are_read_alike(tmp_path, line_end):
    path = tmp_path / "d.csv"
    path.write_bytes(line_end.join(["prompt,response", "a,b", 'c,"d\ne"', ""]).encode())
    df = ingest(corpus_config("csv", path))
    assert df["response"].tolist() == ["b", "d\ne"]


def test_jsonl_with_crlf_line_ends_is_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b"}\r\n{"prompt": "c", "response": "d"}\r\n')
    assert ingest(corpus_config("jsonl", path))["response"].tolist() == ["b", "d"]
