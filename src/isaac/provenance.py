"""Which code and config produced a results folder, and a check that refuses mixed folders.

Snakemake reruns a job when its inputs, parameters or shell command change, not when the Python
behind a stage does: after a code change, a folder can hold runs trained and scored by different
versions of the code. So every stage that makes a run's files stamps its JSON with
`code_version()` (`sample` the targets' stats, `train` the model folder, `score` the scores),
the summary gathers each run's stamps into runs.csv's `code` column and writes provenance.json
(the commits, the config layers of the invocation with their SHA-256), and
`python -m isaac.provenance check FOLDER...` fails on a folder whose runs name no commit, a
checkout with uncommitted changes, or more than one commit.

Snakemake also sees an input change only as a newer modification time, which a file copied
with its times (cp -p, rsync -a, tar x, a restored backup) does not have; so the files a job
reads from outside the pipeline (the corpus, a local encoder or generator folder) reach it as
a parameter too, their `content_fingerprint`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from isaac.cli import run
from isaac.io import InputError, model_files, read_json, write_json

LAYERS_ENV = "ISAAC_CONFIG_LAYERS"  # the workflow's config files, one per line, for the summary
CODE_KEY = "code"  # the stamp's key in a stage's JSON and runs.csv's column
FILE = "provenance.json"  # in a model folder (its stamp) and in a results folder (the summary's)
DIRTY = "-dirty"
UNKNOWN = "unknown"
PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def code_version() -> str:
    """The commit of the checkout this package runs from, "-dirty" when a tracked file differs
    from it, "unknown" outside a git checkout (e.g. an installed wheel)."""
    git = ["git", "-C", str(PACKAGE_DIR)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return commit + (DIRTY if changes else "")


def stamp() -> dict[str, str]:
    return {CODE_KEY: code_version()}


def run_code(stamps: Iterable[str | None]) -> str:
    """One run's `code` cell: the distinct stamps of its stages, "+"-joined ("" if none)."""
    return "+".join(sorted({s for s in stamps if isinstance(s, str) and s}))


def model_code(model_folder: str | None) -> str | None:
    """The stamp the train stage left in a model folder (None for a model-free run or a model
    trained before stamps)."""
    path = Path(model_folder) / FILE if model_folder else None
    return read_json(path).get(CODE_KEY) if path and path.is_file() else None


def invocation_layers() -> list[str]:
    """The config files of the workflow invocation this stage runs under (none outside one)."""
    return [path for path in os.environ.get(LAYERS_ENV, "").split("\n") if path]


def config_layers(paths: Sequence[str]) -> list[dict[str, str]]:
    """Each config file of the invocation, in layering order, with the SHA-256 of its text."""
    layers = []
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: config layer not found")
        layers.append({"path": path, "sha256": _file_sha256(Path(path))})
    return layers


def content_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """The SHA-256 of what `paths` hold: each file's name (relative to a folder given, whose
    hidden files no loader reads are left out) and content, in order. A rule passes it as a
    param, and Snakemake reruns a job whose params change: the job reruns when the content it
    reads changes, whatever the modification times say, and an unrelated edit reruns nothing."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        files = model_files(path) if path.is_dir() else [path]
        for file in files:
            # a missing input is Snakemake's to report, by its name
            content = _file_sha256(file) if file.is_file() else "missing"
            digest.update(f"{file.relative_to(path).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_provenance(runs: pd.DataFrame, layers: Sequence[str], out) -> None:
    write_json(
        {
            "commits": commits(runs),
            "summary_code": code_version(),
            "config_layers": config_layers(layers),
        },
        out,
    )


def commits(runs: pd.DataFrame) -> list[str]:
    cells = runs[CODE_KEY].fillna("").astype(str) if CODE_KEY in runs else pd.Series([""])
    return sorted({c for cell in cells for c in cell.split("+") if c})


def problems(folder: Path) -> list[str]:
    """Why `folder` (a results folder with runs.csv) cannot be traced to one commit, if it can't."""
    path = folder / "runs.csv"
    if not path.is_file():
        return [f"{path}: no runs.csv"]
    runs = pd.read_csv(path, dtype={CODE_KEY: str}, keep_default_na=False)
    if CODE_KEY not in runs:
        return [f"{path}: no {CODE_KEY} column: its runs predate the commit stamps"]
    found = []
    unstamped = runs[runs[CODE_KEY] == ""]
    if len(unstamped):
        found.append(f"{path}: {len(unstamped)} run(s) without a recorded commit")
    seen = commits(runs)
    if any(c.endswith(DIRTY) or c == UNKNOWN for c in seen):
        found.append(f"{path}: run(s) made from uncommitted or untracked code: {', '.join(seen)}")
    if len(seen) > 1:
        found.append(f"{path}: runs from {len(seen)} commits: {', '.join(seen)}")
    return found


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Check that each results folder's runs share a commit.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser(
        "check", help="fail on a folder whose runs name no, several or dirty commits"
    )
    c.add_argument("folders", nargs="+", help="results folders (each with runs.csv)")
    args = p.parse_args(argv)
    found = [line for folder in args.folders for line in problems(Path(folder))]
    for line in found:
        print(line, file=sys.stderr)
    if found:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
