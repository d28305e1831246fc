"""Read a corpus in one of the supported formats into the pipeline's corpus.parquet.

Every later stage reads only corpus.parquet (columns id, split, prompt, response, label,
category, prompt_group), so all format quirks and all input validation live here. A bad input stops
with an InputError naming the file (and line or item) and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from isaac import demo
from isaac.cli import run
from isaac.io import InputError, read_json, write_parquet
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


def _text(value, field: str, where: str) -> str:
    if _is_null(value):
        raise InputError(f"{where}: missing field {field!r}")
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} is {type(value).__name__}, expected text")
    return value


def _optional_text(value) -> str | None:
    if _is_null(value):
        return None
    text = str(value)
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
            row_id = _optional_text(get("id"))
            if row_id is None:
                raise InputError(f"{loc}: empty id in field {fields['id']!r}")
        rows.append(
            {
                "id": row_id,
                "split": parse_split(get("split"), loc, default_split),
                "prompt": _text(get("prompt"), fields["prompt"], loc),
                "response": _text(get("response"), fields["response"], loc),
                "label": parse_label(get("label"), loc),
                "category": _optional_text(get("category")),
                "prompt_group": _optional_text(get("prompt_group")),
                "_where": loc,
            }
        )
    return pd.DataFrame(rows, columns=[*COLUMNS, "_where"])


def _check_columns(available: set[str], fields: dict, path: Path) -> dict:
    """Required columns must exist; optional mapped columns that are absent count as null."""
    required = [fields["prompt"], fields["response"]] + ([fields["id"]] if fields["id"] else [])
    missing = [c for c in required if c not in available]
    if missing:
        raise InputError(f"{path}: missing field(s) {', '.join(map(repr, missing))}")
    fields = dict(fields)
    for key in ("label", "category", "split", "prompt_group"):
        if fields[key] is not None and fields[key] not in available:
            log.warning("%s: no column %r; %s treated as absent", path, fields[key], key)
            fields[key] = None
    return fields


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: file not found")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text ({err.reason})") from err


def read_jsonl(path, fields: dict | None, default_split: str) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped; line numbers in errors are 1-based."""
    path = Path(path)
    fields = {**DEFAULT_FIELDS, **(fields or {})}
    _require_file(path)
    records, wheres = [], []
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: line {lineno}: not UTF-8 text ({err.reason})") from err
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {lineno}: malformed JSON ({err.msg})") from err
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object")
        records.append(rec)
        wheres.append(f"line {lineno}")
    if not records:
        raise InputError(f"{path}: no records")
    available = set().union(*(r.keys() for r in records))
    # A required field missing on one line is reported with that line below.
    optional = _check_columns(
        available
        | {fields["prompt"], fields["response"]}
        | ({fields["id"]} if fields["id"] else set()),
        fields,
        path,
    )
    return _records_to_frame(records, optional, path, default_split, wheres)


def read_csv(path, fields: dict | None, default_split: str) -> pd.DataFrame:
    """A CSV file with a header row; every value is text ("" counts as null for label etc.)."""
    path = Path(path)
    fields = {**DEFAULT_FIELDS, **(fields or {})}
    _require_file(path)
    text = _decode(path)
    # No field is longer than the file: lift the csv module's 128 KiB default to that.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: empty file") from None
    fields = _check_columns(set(header), fields, path)
    records, wheres = [], []
    start = reader.line_num + 1
    try:
        for values in reader:
            if values:
                if len(values) != len(header):
                    raise InputError(
                        f"{path}: line {start}: {len(values)} values for {len(header)} columns"
                    )
                records.append(dict(zip(header, values)))
                wheres.append(f"line {start}")
            start = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from err
    if not records:
        raise InputError(f"{path}: no records")
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
        items = read_json(path)
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
        items = read_json(file)
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
