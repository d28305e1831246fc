"""Read a corpus in one of the supported formats into the pipeline's corpus.parquet.

Every later stage reads only corpus.parquet (columns id, split, prompt, response, label,
category, prompt_group), so all format quirks and all input validation live here. A bad input stops
with an InputError naming the file (and line or item) and nothing is written.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import io
import json
import logging
import math
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from isaac import demo
from isaac.cli import run
from isaac.io import InputError, write_parquet
from isaac.pollute import PolluteConfig, pollute
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.ingest")

FORMATS = ("demo", "diasafety", "diasafety_generations", "jsonl", "csv", "parquet")
COLUMNS = ["id", "split", "prompt", "response", "label", "category", "prompt_group"]
# corpus.parquet: the read columns, then whether isaac.pollute rewrote the row.
CORPUS_COLUMNS = [*COLUMNS, "polluted"]
SPLITS = ("train", "val", "test")
DIASAFETY_SPLITS = ("train", "val", "test")
EMPTY_POLICIES = ("error", "keep", "drop")
DEFAULT_FIELDS = {
    "id": None,
    "prompt": "prompt",
    "response": "response",
    "label": "label",
    "category": "category",
    "split": "split",
    "prompt_group": None,
}
REQUIRED_FIELDS = ("prompt", "response", "id")
OPTIONAL_FIELDS = ("label", "category", "split", "prompt_group")
# Byte-order marks of encodings other than UTF-8 (UTF-32 LE starts like UTF-16 LE: test it first).
FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
# Half of a UTF-16 pair: JSON can spell one alone (\ud800), but it is no character and no
# UTF-8 file can hold it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Accepted spellings (after strip + lower-case). 1 = "is unsafe", the usual toxicity convention.
LABEL_VALUES = {"safe": "safe", "unsafe": "unsafe", "0": "safe", "1": "unsafe"}
SPLIT_VALUES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}


# --------------------------------------------------------------------------- value parsing


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def parse_label(value, where: str):
    """Map an input label to "safe"/"unsafe"/None; anything else is an InputError."""
    if _is_null(value):
        return None
    if isinstance(value, bool):
        raise InputError(f"{where}: label {value!r} is a boolean; use safe/unsafe or 0/1")
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return "unsafe" if value == 1 else "safe"
        raise InputError(f"{where}: invalid label {value!r} (accepted: safe, unsafe, 0, 1)")
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "":
            return None
        if key in LABEL_VALUES:
            return LABEL_VALUES[key]
    raise InputError(f"{where}: invalid label {value!r} (accepted: safe, unsafe, 0, 1)")


def parse_split(value, where: str, default: str) -> str:
    if _is_null(value) or (isinstance(value, str) and value.strip() == ""):
        return default
    key = str(value).strip().lower()
    if key not in SPLIT_VALUES:
        raise InputError(f"{where}: invalid split {value!r} (accepted: train, val, test)")
    return SPLIT_VALUES[key]


def _no_surrogate(text: str, field: str, where: str) -> str:
    found = LONE_SURROGATE.search(text)
    if found:
        raise InputError(
            f"{where}: field {field!r} holds a lone surrogate ({found.group()!r} at character "
            f"{found.start()}), which is not a character"
        )
    return text


def _text(value, field: str, where: str) -> str:
    if _is_null(value):
        raise InputError(f"{where}: missing field {field!r}")
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} is {type(value).__name__}, expected text")
    return _no_surrogate(value, field, where)


def _optional_text(value, field: str, where: str) -> str | None:
    if _is_null(value):
        return None
    text = _no_surrogate(str(value), field, where)
    return text if text.strip() else None


# --------------------------------------------------------------------------- readers


def _records_to_frame(
    records: list[dict], fields: dict, path: Path, default_split: str, wheres: list[str]
) -> pd.DataFrame:
    """Apply a field mapping to parsed records (dicts), validating each value."""
    rows = []
    for i, (rec, where) in enumerate(zip(records, wheres)):
        loc = f"{path}: {where}"
        for key in ("prompt", "response"):
            if fields[key] not in rec:
                raise InputError(f"{loc}: missing field {fields[key]!r}")
        if fields["id"] is not None and fields["id"] not in rec:
            raise InputError(f"{loc}: missing field {fields['id']!r}")

        def get(key, rec=rec):
            name = fields[key]
            return None if name is None else rec.get(name)

        if fields["id"] is None:
            row_id = f"{path.stem}-{i:06d}"
        else:
            row_id = _optional_text(get("id"), fields["id"], loc)
            if row_id is None:
                raise InputError(f"{loc}: empty id in field {fields['id']!r}")
        rows.append(
            {
                "id": row_id,
                "split": parse_split(get("split"), loc, default_split),
                "prompt": _text(get("prompt"), fields["prompt"], loc),
                "response": _text(get("response"), fields["response"], loc),
                "label": parse_label(get("label"), loc),
                "category": _optional_text(get("category"), fields["category"], loc),
                "prompt_group": _optional_text(get("prompt_group"), fields["prompt_group"], loc),
                "_where": loc,
            }
        )
    return pd.DataFrame(rows, columns=[*COLUMNS, "_where"])


def _comparable(name: str) -> str:
    """A column name without case, surrounding spaces or invisible characters (a byte-order
    mark, a zero-width space): two names equal here look the same to a person."""
    visible = "".join(
        c for c in unicodedata.normalize("NFKC", name) if unicodedata.category(c) != "Cf"
    )
    return visible.strip().casefold()


def _check_columns(available: set[str], fields: dict, path: Path) -> dict:
    """The mapping with absent optional columns set to None.

    A file without a label, category, split or prompt_group column simply has no such data
    (logged); but a mapped name that is absent while a column differs from it only in case,
    spaces or invisible characters ("Label", " split") is refused: reading on would drop the
    data the mapping asked for. prompt, response and a mapped id must be there.
    """
    # Sorted so that the message is the same on every run when several columns look alike.
    lookalikes = {_comparable(name): name for name in sorted(available, reverse=True)}
    missing = []
    fields = dict(fields)
    for key in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
        name = fields[key]
        if name is None or name in available:
            continue
        lookalike = lookalikes.get(_comparable(name))
        if lookalike is not None:
            raise InputError(
                f"{path}: no column {name!r} for corpus.fields.{key}, but a column {lookalike!r}; "
                f"rename the column or set corpus.fields.{key} to it"
            )
        if key in REQUIRED_FIELDS:
            missing.append(name)
        else:
            log.warning("%s: no column %r; %s treated as absent", path, name, key)
            fields[key] = None
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(map(repr, missing))}")
    return fields


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: file not found")


def _utf8_bytes(path: Path) -> bytes:
    """The file's bytes without a UTF-8 byte-order mark (spreadsheet programs write one, and
    left in it would rename the first column); UTF-16 and UTF-32 files are refused by theirs."""
    data = path.read_bytes()
    for bom, encoding in FOREIGN_BOMS:
        if data.startswith(bom):
            raise InputError(f"{path}: {encoding} text (by its byte-order mark); save it as UTF-8")
    return data.removeprefix(codecs.BOM_UTF8)


def _decode(path: Path) -> str:
    data = _utf8_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text ({err.reason})") from err


class _Refused(ValueError):
    """What a JSON parsing hook refuses; the reader adds the file and line."""


class _KeysTwice(dict):
    """A JSON object that names a key twice (json.loads would keep the last value silently)."""

    key: str


def _object(pairs: list[tuple]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set = set()
    twice = _KeysTwice(obj)
    twice.key = next(k for k, _ in pairs if k in seen or seen.add(k))
    return twice


def _constant(name: str):
    raise _Refused(f"{name} is not JSON (a number must be finite)")


def _integer(text: str) -> int:
    digits, limit = len(text.lstrip("-")), sys.get_int_max_str_digits()  # 0: no limit
    if limit and digits > limit:
        raise _Refused(f"a number of {digits} digits (Python reads at most {limit})")
    return int(text)


def _key_twice(value) -> str | None:
    """The first key named twice in an object anywhere inside `value` (iterative: deep JSON)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _KeysTwice):
            return item.key
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _parse_json(text: str, path: Path, line: int | None = None):
    """json.loads of corpus text, refusing what JSON forbids or Python cannot hold: a key twice
    in one object (named by the `line` of a JSONL file, or the item of a list), NaN and
    Infinity, a number of more digits than Python reads, nesting deeper than its stack."""

    def where(lineno: int | None) -> str:
        lineno = line if line is not None else lineno
        return f"{path}: line {lineno}" if lineno is not None else str(path)

    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer
        )
    except json.JSONDecodeError as err:
        raise InputError(f"{where(err.lineno)}: malformed JSON ({err.msg})") from err
    except _Refused as err:
        raise InputError(f"{where(None)}: {err}") from None
    except RecursionError:
        raise InputError(f"{where(None)}: JSON nested too deeply to read") from None
    items = value if line is None and isinstance(value, list) else [value]
    for i, item in enumerate(items):
        key = _key_twice(item)
        if key is not None:
            at = where(None) if item is value else f"{path}: item {i}"
            raise InputError(f"{at}: key {key!r} twice in one object")
    return value


def _read_json_file(path: Path):
    """A whole corpus JSON file (DiaSafety, generations): UTF-8 with or without a BOM."""
    _require_file(path)
    return _parse_json(_decode(path), path)


def read_jsonl(path, fields: dict | None, default_split: str) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped; line numbers in errors are 1-based."""
    path = Path(path)
    fields = {**DEFAULT_FIELDS, **(fields or {})}
    _require_file(path)
    records, wheres = [], []
    for lineno, raw in enumerate(_utf8_bytes(path).split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: line {lineno}: not UTF-8 text ({err.reason})") from err
        if not line.strip():
            continue
        rec = _parse_json(line, path, lineno)
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object")
        records.append(rec)
        wheres.append(f"line {lineno}")
    if not records:
        raise InputError(f"{path}: no records")
    # A required field in some records but not all is reported with its line below.
    fields = _check_columns(set().union(*(r.keys() for r in records)), fields, path)
    return _records_to_frame(records, fields, path, default_split, wheres)


def _csv_header(names: list[str], path: Path) -> set[str]:
    """The header's column names; a name given twice is refused (the last column would win)."""
    if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
        raise InputError(
            f"{path}: line 1: one column {names[0]!r}; the values must be separated by commas"
        )
    for j, name in enumerate(names):
        if name.strip() and name in names[:j]:
            raise InputError(
                f"{path}: line 1: column {name!r} twice in the header "
                f"(columns {names.index(name) + 1} and {j + 1})"
            )
    return set(names)


def read_csv(path, fields: dict | None, default_split: str) -> pd.DataFrame:
    """A comma-separated file with a header row; every value is text ("" counts as null for
    label etc.). Quotes are read strictly: a quote that is never closed, or text after a
    closing quote, is refused rather than let it swallow the rows after it."""
    path = Path(path)
    fields = {**DEFAULT_FIELDS, **(fields or {})}
    _require_file(path)
    text = _decode(path)
    # No field is longer than the file: lift the csv module's 128 KiB default to that.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, records, wheres, spanning = None, [], [], 0
    start = 1
    try:
        for values in reader:
            if header is None:
                header = values
                fields = _check_columns(_csv_header(header, path), fields, path)
            elif values:
                if len(values) != len(header):
                    raise InputError(
                        f"{path}: line {start}: {len(values)} values for {len(header)} columns"
                    )
                # A second file's header (with its own BOM) after `cat a.csv b.csv`.
                if [values[0].removeprefix("\ufeff"), *values[1:]] == header:
                    raise InputError(f"{path}: line {start}: the header again (files joined?)")
                records.append(dict(zip(header, values)))
                wheres.append(f"line {start}")
                spanning += reader.line_num > start
            start = reader.line_num + 1
    except csv.Error as err:
        lines = f"line {start}" if reader.line_num <= start else f"lines {start}-{reader.line_num}"
        raise InputError(f"{path}: {lines}: malformed CSV ({err}); a stray quote?") from err
    if header is None:
        raise InputError(f"{path}: empty file")
    if not records:
        raise InputError(f"{path}: no records")
    if spanning:
        log.info("%s: %d of %d records span several lines", path, spanning, len(records))
    return _records_to_frame(records, fields, path, default_split, wheres)


def read_parquet_table(path, fields: dict | None, default_split: str) -> pd.DataFrame:
    path = Path(path)
    fields = {**DEFAULT_FIELDS, **(fields or {})}
    _require_file(path)
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files and bad UTF-8
        raise InputError(f"{path}: not a readable Parquet file ({err})") from err
    fields = _check_columns(set(table.columns), fields, path)
    columns = [c for c in dict.fromkeys(v for v in fields.values() if v is not None)]
    records = table[columns].astype(object).where(table[columns].notna(), None).to_dict("records")
    if not records:
        raise InputError(f"{path}: no records")
    wheres = [f"row {i}" for i in range(len(records))]
    return _records_to_frame(records, fields, path, default_split, wheres)


def read_diasafety(folder) -> pd.DataFrame:
    """DiaSafety's train/val/test.json; ids "{split}-{index:05d}" follow the file order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (set corpus.path to the DiaSafety folder)")
    frames = []
    for split in DIASAFETY_SPLITS:
        path = folder / f"{split}.json"
        items = _read_json_file(path)
        if not isinstance(items, list):
            raise InputError(f"{path}: expected a JSON list of objects")
        records, wheres = [], []
        for i, item in enumerate(items):
            where = f"item {i}"
            if not isinstance(item, dict):
                raise InputError(f"{path}: {where}: expected a JSON object")
            for key in ("context", "response", "label"):
                if key not in item:
                    raise InputError(f"{path}: {where}: missing field {key!r}")
            if _is_null(item["label"]):
                raise InputError(f"{path}: {where}: missing label")
            records.append({**item, "id": f"{split}-{i:05d}", "split": split})
            wheres.append(where)
        fields = {**DEFAULT_FIELDS, "id": "id", "prompt": "context", "prompt_group": None}
        frames.append(_records_to_frame(records, fields, path, split, wheres))
    corpus = pd.concat(frames, ignore_index=True)
    if corpus.empty:
        raise InputError(f"{folder}: no records in {', '.join(DIASAFETY_SPLITS)}.json")
    return corpus


def prompt_group(prompt: str) -> str:
    """A stable id for a prompt text, so responses to the same context share a pool."""
    return "g-" + hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


def read_diasafety_generations(path, default_split: str) -> pd.DataFrame:
    """Sampled responses ({"context", "gen_response": [...]}) -> one unlabelled row each.

    A folder means every *.json file in it (sorted by name). Ids are "{file stem}-{item:05d}-
    {j:02d}"; `prompt_group` hashes the context text, so the same context in several files (or
    twice in one file) forms one pool.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"{path}: no *.json files in folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{path}: file or folder not found")
    rows = []
    for file in files:
        items = _read_json_file(file)
        if not isinstance(items, list):
            raise InputError(f"{file}: expected a JSON list of objects")
        for i, item in enumerate(items):
            loc = f"{file}: item {i}"
            if not isinstance(item, dict):
                raise InputError(f"{loc}: expected a JSON object")
            for key in ("context", "gen_response"):
                if key not in item:
                    raise InputError(f"{loc}: missing field {key!r}")
            context = _text(item["context"], "context", loc)
            responses = item["gen_response"]
            if not isinstance(responses, list):
                raise InputError(f"{loc}: field 'gen_response' must be a list of strings")
            group_of_context = prompt_group(context)
            for j, response in enumerate(responses):
                rows.append(
                    {
                        "id": f"{file.stem}-{i:05d}-{j:02d}",
                        "split": default_split,
                        "prompt": context,
                        "response": _text(response, f"gen_response[{j}]", loc),
                        "label": None,
                        "category": None,
                        "prompt_group": group_of_context,
                        "_where": f"{loc} response {j}",
                    }
                )
    if not rows:
        raise InputError(f"{path}: no responses")
    return pd.DataFrame(rows, columns=[*COLUMNS, "_where"])


# --------------------------------------------------------------------------- validation


def validate(df: pd.DataFrame, empty_responses: str) -> pd.DataFrame:
    """Whole-table checks (empty texts, duplicate ids); returns the contract's columns.

    `empty_responses`: error (default), keep (as ""), or drop. DiaSafety itself has three empty
    responses (labelled Safe) and its generations 191, so those configs choose keep/drop.
    """
    if empty_responses not in EMPTY_POLICIES:
        raise InputError(f"corpus.empty_responses: {empty_responses!r} not in {EMPTY_POLICIES}")
    if df.empty:
        raise InputError("corpus: no rows")
    empty_prompt = df["prompt"].str.strip() == ""
    if empty_prompt.any():
        raise InputError(f"{df.loc[empty_prompt.idxmax(), '_where']}: empty prompt")
    empty_response = df["response"].str.strip() == ""
    if empty_response.any():
        if empty_responses == "error":
            raise InputError(
                f"{df.loc[empty_response.idxmax(), '_where']}: empty response "
                f"({int(empty_response.sum())} in all; set corpus.empty_responses to keep or drop)"
            )
        log.warning("%d empty responses (%s)", int(empty_response.sum()), empty_responses)
        if empty_responses == "drop":
            df = df.loc[~empty_response].reset_index(drop=True)
        else:
            df = df.assign(response=df["response"].where(~empty_response, ""))
    dup = df["id"].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup.idxmax()]
        others = df.loc[dup & (df["id"] == first["id"]), "_where"].tolist()
        raise InputError(f"{first['_where']}: duplicate id {first['id']!r} (also at {others[1]})")
    out = df[COLUMNS].copy()
    for col in COLUMNS:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class DemoConfig:
    """corpus.demo: the demo corpus's seed, size and split shares."""

    seed: int
    n_prompts: int
    test_fraction: float
    val_fraction: float


@dataclass(frozen=True)
class CorpusConfig:
    """The corpus section (its name only names the results folder); a format's unused keys
    are null."""

    format: str
    path: str | None
    fields: dict | None
    default_split: str
    empty_responses: str
    demo: DemoConfig | None
    pollute: PolluteConfig


def read_corpus(config: CorpusConfig) -> pd.DataFrame:
    """The rows of the configured source, before whole-table validation."""
    fmt, path = config.format, config.path
    if fmt == "demo":
        if config.demo is None:
            raise InputError("corpus.demo: required for format 'demo'")
        return demo.generate(**asdict(config.demo)).assign(_where="demo")
    if not path:
        raise InputError(f"corpus.path: required for format {fmt!r}")
    if fmt == "diasafety":
        return read_diasafety(path)
    if fmt == "diasafety_generations":
        return read_diasafety_generations(path, config.default_split)
    readers = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet_table}
    if fmt not in readers:
        raise InputError(
            f"corpus.format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})"
        )
    fields = config.fields or {}
    unknown = set(fields) - set(DEFAULT_FIELDS)
    if unknown:
        raise InputError(f"corpus.fields: unknown field(s) {', '.join(sorted(unknown))}")
    return readers[fmt](path, fields, config.default_split)


def ingest(config: CorpusConfig) -> pd.DataFrame:
    """Read, validate and (when pollute.rate > 0) pollute a corpus: the corpus.parquet table."""
    return pollute(validate(read_corpus(config), config.empty_responses), config.pollute)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isaac.ingest", description=__doc__)
    add_config_argument(parser, CorpusConfig)
    parser.add_argument("--out", required=True, help="corpus.parquet to write")
    args = parser.parse_args(argv)
    corpus = ingest(parse(CorpusConfig, args.config))
    write_parquet(corpus, args.out)
    counts = corpus.groupby("split").size().to_dict()
    log.info("wrote %d rows %s -> %s", len(corpus), counts, args.out)


if __name__ == "__main__":
    run(main)
