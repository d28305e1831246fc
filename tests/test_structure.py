"""The code's shape: one declaration of the methods, no import cycle, settings owned by the
schema, and rules that each log, benchmark and name the module they run."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest
import yaml

from conftest import REPO, rule_blocks, schema_defaults, settings
from isaac import runs
from isaac.embed import EmbedConfig
from isaac.generate import GenerateConfig
from isaac.likelihood import LikelihoodConfig
from isaac.models import GeneratorConfig
from isaac.neighbours import NeighboursConfig
from isaac.plots import FigureConfig
from isaac.prompts import PromptsConfig
from isaac.report import SummaryConfig
from isaac.tokenize import TokenizeConfig
from isaac.train import TrainConfig

SRC = REPO / "src" / "isaac"
MODULES = {path.stem: ast.parse(path.read_text()) for path in sorted(SRC.glob("*.py"))}
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
RULE_FILES = sorted((REPO / "rules").glob("*.smk"))


def isaac_imports(tree: ast.Module) -> set[str]:
    """The isaac modules a module imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "isaac":
                found |= {alias.name for alias in node.names if alias.name in MODULES}
            elif node.module.startswith("isaac."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("isaac.")}
    return found


def test_isaac_modules_import_each_other_without_a_cycle():
    graph = {name: isaac_imports(tree) - {name} for name, tree in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join([*path, name])}"
        state[name] = "open"
        for other in sorted(graph[name]):
            visit(other, [*path, name])
        state[name] = "done"

    for name in graph:
        visit(name, [])


def test_isaac_modules_import_isaac_modules_at_the_top():
    for name, tree in MODULES.items():
        top = {node for node in tree.body if isinstance(node, ast.ImportFrom)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("isaac"):
                assert node in top, f"isaac.{name} line {node.lineno}: import inside a function"


def method_lists(tree: ast.Module) -> list[int]:
    """Lines of tuple/list literals that spell out two or more method names."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if sum(name in runs.METHODS for name in names) >= 2:
                lines.append(node.lineno)
    return lines


def test_method_lists_are_declared_only_in_isaac_runs():
    declared = {name: method_lists(tree) for name, tree in MODULES.items()}
    assert declared.pop("runs"), "isaac.runs declares the methods"
    assert not {name: lines for name, lines in declared.items() if lines}
    for smk in [*RULE_FILES, *sorted((REPO / "rules" / "helpers").glob("*.smk"))]:
        assert '"isaac_paper"' not in smk.read_text(), smk


def test_schema_method_enums_equal_the_declared_methods():
    for section, key in (("sweep", "methods"), ("summary", "baselines")):
        enum = SCHEMA["properties"][section]["properties"][key]["items"]["enum"]
        assert tuple(enum) == runs.METHODS, (section, key)
    assert tuple(schema_defaults("sweep")["methods"]) == runs.METHODS


def test_run_ids_match_the_wildcard_constraints():
    pattern = re.escape(runs.RUN).replace(r"\{", "{").replace(r"\}", "}")
    for key, value in runs.WILDCARD_PATTERNS.items():
        pattern = pattern.replace("{" + key + "}", f"(?P<{key}>{value})")
    ids = runs.run_ids(runs.METHODS, [0.1, 1, 2.5e-3], [1, 5], [0, 12])
    assert len(ids) == 4 * 2 * 2 + 3 * 3 * 2 * 2  # tau-free methods once per (m, seed)
    for run in ids:
        match = re.fullmatch(pattern, run)
        assert match, run
        assert match["method"] in runs.METHODS
        assert runs.fmt_tau(float(match["tau"])) == match["tau"]
    assert not re.fullmatch(pattern, "isaac_extra/tau1.0-m1-seed0")


SECTIONS = {
    "tokenize": TokenizeConfig,
    "likelihood": LikelihoodConfig,
    "neighbours": NeighboursConfig,
    "generator": GeneratorConfig,
    "train": TrainConfig,
    "report": FigureConfig,
    "summary": SummaryConfig,
}


# Keys that decide which jobs exist rather than what a job does: no job reads them.
JOB_STRUCTURE_KEYS = {"train": {"stages"}}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_whole_section_slice_has_exactly_the_settings_keys(section):
    cls = SECTIONS[section]
    keys = set(schema_defaults(section)) - JOB_STRUCTURE_KEYS.get(section, set())
    assert {f.name for f in dataclasses.fields(cls)} == keys
    assert settings(cls, section) == settings(cls, section)  # every key has a schema default


def all_settings_classes():
    for tree_name, tree in MODULES.items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                yield tree_name, node


def test_settings_dataclasses_are_frozen_and_have_no_defaults():
    classes = list(all_settings_classes())
    assert len(classes) >= 14, classes
    for module, node in classes:
        where = f"isaac.{module}.{node.name}"
        frozen = [d for d in node.decorator_list if isinstance(d, ast.Call)
                  and any(k.arg == "frozen" and k.value.value is True for k in d.keywords)]
        assert frozen, f"{where} is not a frozen dataclass"
        defaults = [s for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None]
        assert not defaults, f"{where}: defaults belong to config/schema.yaml"


def test_partial_slices_are_schema_keys():
    assert {f.name for f in dataclasses.fields(EmbedConfig)} < set(schema_defaults("embed"))
    decoding = {f.name for f in dataclasses.fields(GenerateConfig)}
    prompts = {f.name for f in dataclasses.fields(PromptsConfig)}
    assert not decoding & prompts
    assert decoding | prompts == set(schema_defaults("generate"))


def test_loggers_are_named_after_their_module():
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getLogger":
                arg = node.args[0] if node.args else None
                assert isinstance(arg, ast.Constant) and arg.value == f"isaac.{name}", (
                    f"isaac.{name} line {node.lineno}: logger must be named 'isaac.{name}'"
                )


def test_every_job_rule_logs_benchmarks_and_runs_the_module_of_its_name():
    # The stage modules whose name differs from the rule: one module draws several figures.
    module_of = {
        "longtail_responses": "longtail",
        "longtail_ngrams": "longtail",
        "group_sizes": "sample_figures",
        "oracle_safe_rate_vs_tau": "sample_figures",
        "summary": "report",
        "report_figures": "report",
        "train_stage": "train",
        "embed_shard": "embed",
        "pollution_table": "experiments",
        "tempering_table": "experiments",
        "head_safety_table": "experiments",
        "encoders_table": "experiments",
    }
    job_rules = 0
    for name, block in rule_blocks():
        if "shell:" not in block:
            continue  # a target rule (inputs only)
        job_rules += 1
        for directive in ("log:", "benchmark:", "conda:", "threads:", "resources:"):
            assert directive in block, f"rule {name} lacks {directive}"
        modules = set(re.findall(r"\{ISAAC\}\.(\w+)", block))
        assert modules == {module_of.get(name, name)}, (name, modules)
        assert (SRC / f"{module_of.get(name, name)}.py").is_file(), name
        settings_free = {"ngrams", "generator_base"}  # a wildcard or nothing to configure
        assert "--config {params.config:q}" in block or name in settings_free, name
    assert job_rules >= 18


def test_shell_commands_prepend_to_pythonpath():
    common = (REPO / "rules" / "common.smk").read_text()
    assert "${{{{PYTHONPATH:+:$PYTHONPATH}}}}" in common
