"""Stage settings: every rule hands its stage one config section as a JSON object.

A section's settings dataclass declares exactly the section's keys (less its structure keys,
below) and no default values: config/schema.yaml owns every default, so a key missing from the
JSON is an error here rather than a second, possibly different default. A job receives a key it
cannot depend on as null, so that editing it reruns nothing. Values are checked against the
annotations (an int is accepted where a float is expected and stored as a float).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import TypeVar

from isaac.io import InputError

T = TypeVar("T")

# Keys that decide which jobs exist or where their files go, not what a job computes: the
# workflow reads them, no stage does. The sweep section holds nothing else.
STRUCTURE_KEYS = {
    "corpus": ("name",),
    "ngrams": ("max_n",),
    "embed": ("name", "shards"),
    "sample": ("figure_taus",),
    "sweep": ("methods", "taus", "ms", "seeds"),
    "train": ("rounds",),
    "judge": ("features", "second", "from"),
}


def section_settings(section: dict, name: str, nulled=()) -> dict:
    """What a job of the stage reading section `name` receives: the section without its
    structure keys, with the keys in `nulled` (those the job cannot depend on) set to null."""
    unknown = set(nulled) - set(section)
    if unknown:
        raise KeyError(f"{name}: no key(s) {', '.join(sorted(unknown))} to null")
    structure = STRUCTURE_KEYS.get(name, ())
    return {
        key: None if key in nulled else value
        for key, value in section.items()
        if key not in structure
    }


def from_dict(cls: type[T], data, where: str = "config") -> T:
    """An instance of the dataclass `cls` from a dict with exactly its field names."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}")
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    missing = [name for name in names if name not in data]
    if unknown or missing:
        problems = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        problems += [f"missing key(s) {', '.join(missing)}"] if missing else []
        raise InputError(f"{where}: {'; '.join(problems)}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _convert(data[name], hints[name], f"{where}.{name}") for name in names})


def _convert(value, hint, where: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise InputError(f"{where}: must not be null")
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, dict):
            return from_dict(option, value, where)
        kind = typing.get_origin(option) or option
        if kind is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if kind is int and isinstance(value, int):
            return value
        if kind is float and isinstance(value, (int, float)):
            return float(value)
        if kind in (str, dict) and isinstance(value, kind):
            return value
        if kind is tuple and isinstance(value, list):
            return tuple(value)
    raise InputError(f"{where}: {value!r} is not of type {hint}")


def parse(cls: type[T], text: str, where: str = "--config") -> T:
    """The dataclass `cls` from its JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: malformed JSON ({err.msg})") from err
    return from_dict(cls, data, where)


def require(settings, *keys: str, where: str = "--config") -> None:
    """Refuse settings whose `keys` a job needs but received as null."""
    missing = [key for key in keys if getattr(settings, key) is None]
    if missing:
        raise InputError(f"{where}: {', '.join(missing)} must not be null for this job")


def add_config_argument(parser: argparse.ArgumentParser, cls: type) -> None:
    """--config: the stage's settings as one JSON object (the keys of `cls`)."""
    keys = ", ".join(field.name for field in dataclasses.fields(cls))
    parser.add_argument("--config", required=True, help=f"JSON object with the keys {keys}")


def to_json(settings) -> str:
    """Canonical JSON of a settings dataclass (the inverse of `parse`)."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True)
