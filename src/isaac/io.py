"""Validated reads and atomic writes, so a failed stage never leaves a partial output."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class InputError(ValueError):
    """Bad user input. The message names the file (and line) and what is wrong."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block
    succeeds, so a reader never sees a half-written model or judge folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_npz(arrays: dict[str, np.ndarray], path: str | os.PathLike, compress: bool) -> None:
    """Like np.savez, without pickle and with fixed zip timestamps, so equal arrays give equal
    bytes; members are written in the dict's order."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=method) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table deterministically (no pandas index, fixed compression) and atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")


def write_arrow_parquet(columns: dict[str, pa.Array], like: pd.DataFrame,
                        path: str | os.PathLike) -> None:
    """write_parquet for columns built in Arrow (list columns of a million rows convert slowly
    through Python objects): the same bytes as write_parquet of the equivalent DataFrame, whose
    pandas schema metadata is taken from `like` (a few rows of it)."""
    schema = pa.Schema.from_pandas(like, preserve_index=False)
    table = pa.Table.from_arrays(list(columns.values()), schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: malformed JSON ({err.msg})") from err


def read_table(path: str | os.PathLike, required: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a pipeline Parquet table and check that the columns a stage needs are there."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    df = pd.read_parquet(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def read_arrow(path: str | os.PathLike, required: list[str] | tuple[str, ...],
               optional: tuple[str, ...] = ()) -> pa.Table:
    """read_table as an Arrow table of the `required` (checked) and present `optional` columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    names = pq.read_schema(path).names
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return pq.read_table(path, columns=[*required, *(c for c in optional if c in names)])
