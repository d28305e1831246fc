"""Validated reads and atomic writes, so a failed stage never leaves a partial output."""

from __future__ import annotations

import errno
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

from isaac.runs import PAIR_METHODS


class InputError(ValueError):
    """Bad user input. The message names the file (and line) and what is wrong."""


# The file in a judge folder (rule judge) that holds its quality metrics; the summary reads it.
JUDGE_METRICS = "metrics.json"

# The rule that writes each intermediate, by the end of its path under results/{corpus}/
# (a file inside a model or judge folder is matched through its folder). A stage that finds
# one unreadable names the rule, so the user knows what to delete and rerun.
PRODUCERS = (
    ("corpus.parquet", "ingest"),
    ("tokens.parquet", "tokenize"),
    ("ngrams/n*.parquet", "ngrams"),
    ("likelihood.parquet", "likelihood"),
    ("prompts.parquet", "prompts"),
    ("embeddings/*.npz", "embed"),
    ("embeddings/shards/*.npz", "embed_shard"),
    ("neighbours/*.parquet", "neighbours"),
    ("groups/*-global.parquet", "assess_global"),
    ("groups/*-global.json", "assess_global"),
    ("groups/*.parquet", "assess"),
    ("groups/*.json", "assess"),
    ("targets/*/*.parquet", "sample"),
    ("targets/*/*.json", "sample"),
    ("pairs/*/*.parquet", "pairs"),
    ("pairs/*/*.json", "pairs"),
    ("generator_tokenizer", "generator_tokenizer"),
    ("generator_base", "generator_base"),
    *((f"models/{method}/*", "train_dpo") for method in PAIR_METHODS),
    ("models/*/*", "train"),
    ("rounds/*/*/round*", "train_round"),
    ("generations/constant/*.parquet", "constant"),
    ("generations/*/*.parquet", "generate"),
    ("judge/heldout/*", "judge_heldout"),
    ("judge/*", "judge"),
    ("scores/*/*.parquet", "score"),
    ("scores/*/*.json", "score"),
)


def producer(path: str | os.PathLike) -> str | None:
    """The rule that writes `path` (or the folder holding it), if it is a pipeline intermediate."""
    path = Path(path)
    for candidate in (path, *path.parents):
        for pattern, rule in PRODUCERS:
            if candidate.match(pattern):
                return rule
    return None


def unreadable(path: str | os.PathLike, problem: str) -> InputError:
    """An InputError for a file that is there but cannot be read, naming the rule that made it."""
    rule = producer(path)
    remedy = f"; it is made by rule {rule}: delete it and rerun" if rule else ""
    return InputError(f"{path}: {problem}{remedy}")


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class NoSpaceError(OSError):
    """The disk, a quota or the file size limit filled up while an output was written."""


def _out_of_space(err: Exception, folder: Path) -> bool:
    """Whether `err` came from a full disk. Python and pyarrow raise an OSError saying so;
    safetensors puts the OSError in its message, Rust style ("(os error 28)"); torch.save only
    says a write fell short, so then the folder's disk itself must have no room left."""
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return True
    if any(f"(os error {code})" in str(err) for code in NO_SPACE):
        return True
    return os.statvfs(folder).f_bavail == 0


@contextmanager
def named_when_full(path: Path, folder: Path):
    """Re-raise a full-disk failure inside the block as one NoSpaceError naming `path`."""
    try:
        yield
    except (NoSpaceError, InputError):
        raise
    except Exception as err:
        if _out_of_space(err, folder):
            raise NoSpaceError(
                errno.ENOSPC,
                f"{path}: no space left while writing it ({err}); "
                "nothing was kept: free space and rerun",
            ) from err
        raise


def current_umask() -> int:
    """The process's umask, read from /proc where Linux shows it (setting it to read it, the
    only portable way, would briefly change it for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_default_modes(path: Path) -> None:
    """Give `path` (and, for a folder, everything in it) the mode open() and mkdir() would
    under the umask: mkstemp and mkdtemp create 0600 and 0700, which would keep results from
    a cluster group that reads them."""
    mask = current_umask()
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for names, mode in ((dirs, dir_mode), (files, file_mode)):
                for name in names:
                    inside = os.path.join(root, name)
                    if not os.path.islink(inside):  # a link's target is not ours to change
                        os.chmod(inside, mode)
    os.chmod(path, dir_mode if path.is_dir() else file_mode)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with named_when_full(path, path.parent):
            yield Path(tmp)
        give_default_modes(Path(tmp))
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
        with named_when_full(path, path.parent):
            yield tmp
        give_default_modes(tmp)
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


def write_arrow_parquet(
    columns: dict[str, pa.Array], like: pd.DataFrame, path: str | os.PathLike
) -> None:
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
        raise unreadable(path, f"line {err.lineno}: malformed JSON ({err.msg})") from err


def read_table(path: str | os.PathLike, required: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a pipeline Parquet table and check that the columns a stage needs are there."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        df = pd.read_parquet(path)
    except (pa.ArrowException, OSError) as err:
        raise unreadable(path, f"not a readable Parquet file ({err})") from err
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise unreadable(path, f"missing column(s) {', '.join(missing)}")
    return df


def train_rows(corpus_path: str | os.PathLike) -> pd.DataFrame:
    """The train split of corpus.parquet in corpus order, ids as text, missing texts as "";
    unique ids checked. Every pool, group and target comes from these rows."""
    corpus = read_table(corpus_path, ["id", "split", "prompt", "response"])
    train = corpus[corpus["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise InputError(f"{corpus_path}: no rows with split 'train'")
    if train["id"].duplicated().any():
        dup = train.loc[train["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"{corpus_path}: duplicate id {dup!r}")
    for column in ("prompt", "response"):
        train[column] = train[column].fillna("").astype(str)
    train["id"] = train["id"].astype(str)
    return train


def read_arrow(
    path: str | os.PathLike, required: list[str] | tuple[str, ...], optional: tuple[str, ...] = ()
) -> pa.Table:
    """read_table as an Arrow table of the `required` (checked) and present `optional` columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in required if c not in names]
        if missing:
            raise unreadable(path, f"missing column(s) {', '.join(missing)}")
        return pq.read_table(path, columns=[*required, *(c for c in optional if c in names)])
    except (pa.ArrowException, OSError) as err:
        raise unreadable(path, f"not a readable Parquet file ({err})") from err


def read_npz(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz written by write_npz (no pickle), or an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in names if name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise unreadable(path, f"not a readable .npz file ({err})") from err
    missing = [name for name in names if name not in arrays]
    if missing:
        raise unreadable(path, f"missing array(s) {', '.join(missing)}")
    return arrays


# The names of a model folder's files that Hugging Face and sentence-transformers read their
# code choices from: `auto_map` names Python files of the folder to run.
CODE_CONFIGS = ("config.json", "tokenizer_config.json")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder, in name order, less hidden ones (.git, .cache): the loaders
    read none of those."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _is_pickle(path: Path) -> bool:
    """A pickle by name or by its bytes: pickle protocols 2 to 5 start with 0x80 and the
    protocol's number, and torch.save's zip archives hold a data.pkl (pytorch_model.bin,
    *.pt, *.ckpt)."""
    if path.name.endswith(PICKLE_SUFFIXES):
        return True
    with path.open("rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def check_model_folder(folder: str | os.PathLike) -> None:
    """Refuse a local model folder that holds a pickle (loading one can run any code) or asks
    for its own Python code (auto_map, a custom sentence-transformers module): isaac loads
    safetensors weights with trust_remote_code off, and such a folder would otherwise stop
    in a traceback or load as another model than its author's."""
    folder = Path(folder)
    for path in model_files(folder):
        if _is_pickle(path):
            raise InputError(
                f"{path}: a pickle file, and loading one can run any code; keep the weights "
                "as safetensors and remove it from the model folder"
            )
        if path.name in CODE_CONFIGS and "auto_map" in _json_object(path):
            raise InputError(
                f"{path}: auto_map asks for the model folder's own Python code, which isaac "
                "never runs (trust_remote_code stays off)"
            )
        if path.name == "modules.json" and path.parent == folder:
            custom = [t for t in _module_types(path) if not t.startswith("sentence_transformers.")]
            if custom:
                raise InputError(
                    f"{path}: module {custom[0]} is the model folder's own Python code, which "
                    "isaac never runs (trust_remote_code stays off)"
                )


def _json_object(path: Path) -> dict:
    obj = read_json(path)
    return obj if isinstance(obj, dict) else {}


def _module_types(path: Path) -> list[str]:
    """The classes a sentence-transformers modules.json names, one per module."""
    modules = read_json(path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise InputError(f"{path}: not a list of modules")
    return [str(module.get("type", "")) for module in modules]
