"""Shared paths and a Snakemake runner for the workflow tests."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from hypothesis import settings as hypothesis_settings

from isaac.settings import from_dict

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DIASAFETY = SHARED / "data" / "diasafety"
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"
DEMO_CONFIG = REPO / "config" / "demo.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# Local runs need no SLURM: without a configuration, scontrol fails at once instead of waiting
# about 9 s for a controller that does not answer (the SLURM executor plugin calls it at every
# Snakemake start; docs/cluster.md).
LOCAL_RUN_ENV = {"SLURM_CONF": os.devnull}


def slurm_unavailable(reason: str):
    """Skip a test that needs SLURM with the reason, except under CI (CI=true), where it fails:
    CI must exercise the cluster path."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM is required under CI but {reason}")
    pytest.skip(reason)


def _defaults(schema: dict):
    """The value an object schema fills in: its properties' defaults, nested objects filled."""
    out = {}
    for key, prop in schema.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            out[key] = {**_defaults(prop), **prop.get("default", {})}
        elif "default" in prop:
            out[key] = prop["default"]
    return out


SCHEMA_DEFAULTS = _defaults(yaml.safe_load((REPO / "config" / "schema.yaml").read_text()))


def schema_defaults(section: str) -> dict:
    """A config section as config/schema.yaml fills it when a config file leaves it out."""
    return json.loads(json.dumps(SCHEMA_DEFAULTS[section]))


def settings(cls, section: str | None = None, **overrides):
    """A stage's settings dataclass from the schema's defaults of `section` (only the keys the
    dataclass declares), with `overrides`: tests use the same defaults as the workflow."""
    defaults = schema_defaults(section) if section else {}
    names = {f.name for f in dataclasses.fields(cls)}
    return from_dict(cls, {**{k: v for k, v in defaults.items() if k in names}, **overrides})


@pytest.fixture
def diasafety_dir() -> Path:
    if not (DIASAFETY / "train.json").is_file():
        pytest.skip(f"DiaSafety corpus not found at {DIASAFETY} (expected beside the repository)")
    return DIASAFETY


def snakemake(
    workdir: Path,
    *args: str,
    configfiles: tuple[Path, ...] = (TINY_CONFIG,),
    check: bool = True,
    env: dict[str, str] | None = None,
):
    """Run this repository's workflow in `workdir` and return the completed process (without
    config files: the demo); `env` overrides variables of the local run's environment."""
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *(["--configfile", *map(str, configfiles)] if configfiles else []),
        *args,
    ]
    run_env = {
        **os.environ,
        "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **LOCAL_RUN_ENV,
        **(env or {}),
    }
    proc = subprocess.run(cmd, cwd=workdir, env=run_env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id) -> Path:
    """The whole tiny DAG (tests/config/tiny.yaml: every method, one seed, a few training
    steps) in a fresh folder, built once per test session: the pytest-xdist workers share the
    session's base folder, and a file lock lets the first worker that asks build it while any
    other waits. Tests read it and must not change it; copy_of_tiny_run gives a folder to
    change."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # the folder above every worker's own
    workdir, built = root / "tiny-run", root / "tiny-run.built"
    with FileLock(root / "tiny-run.lock"):
        if not built.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir()
            snakemake(workdir, "--cores", "2")
            built.touch()
    return workdir


def copy_of_tiny_run(tiny_run: Path, dest: Path) -> Path:
    """A copy of the shared tiny run that a test may change (modification times kept, so that
    Snakemake finds every output up to date)."""
    shutil.copytree(tiny_run, dest, symlinks=True)
    return dest


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count} (empty when nothing to do)."""
    match = re.search(r"Job stats:\n(.*?)\n\n", dry_run_output + "\n\n", re.S)
    if not match:
        return {}
    jobs = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs


def rule_blocks():
    """(rule name, its text) for every rule in rules/; a rule declared with `use rule A as B
    with:` gets A's text followed by its own, so its overrides come last."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule |checkpoint |use rule )", smk.read_text(), flags=re.M)[1:]:
            derived = re.match(r"use rule (\w+) as (\w+) with:", block)
            if derived:
                blocks[derived.group(2)] = blocks[derived.group(1)] + block
            else:
                blocks[re.match(r"\w+ (\w+):", block).group(1)] = block
    yield from blocks.items()


def property_settings(*suppress, max_examples: int = 40):
    """The suite's hypothesis settings: few examples (CI has two cores), the same ones on every
    run (derandomized, no example database), no deadline; `suppress`: health checks to skip."""
    return hypothesis_settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(suppress),
    )


# `make test` runs the suite in pytest-xdist workers, each test module handed to one worker
# whole, so that a module-scoped fixture is built once (the tiny run, which several modules
# read, is a session fixture that the workers share: tiny_run). The SLURM refusal tests go with
# the SLURM module: they need the tools its cluster fixture installs.
XDIST_GROUPS = {"test_slurm_refusal": "test_slurm"}
# The longest groups (bench/slowest_tests.py, docs/benchmarks.md), handed out first so that none
# starts last; the SLURM group first of all, as its set-up mostly waits on apt and daemons.
LONGEST_FIRST = (
    "test_slurm",
    "test_tiny_run",
    "test_workflow",
    "test_experiments",
    "test_reliability",
    "test_bench_sampling",
    "test_inputs_by_content",
    "test_models",
    "test_train_processes",
    "test_train",
)


def _group(nodeid: str) -> str:
    """A test's worker group: its module's name, or the module XDIST_GROUPS joins it to."""
    module = Path(nodeid.split("::", 1)[0]).stem
    return XDIST_GROUPS.get(module, module)


def pytest_collection_modifyitems(config, items):
    """The LONGEST_FIRST groups first, the rest after in collection order; each group's tests
    together and in their own order."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(_group(item.nodeid), []).append(item)
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    ordered = sorted(groups, key=lambda group: rank.get(group, len(rank)))  # stable
    items[:] = [item for group in ordered for item in groups[group]]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scope scheduler with _group as the scope: each group goes to one worker
    whole, in collection order (`make test` passes --no-loadscope-reorder)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return GroupScheduling(config, log)
