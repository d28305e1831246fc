"""The code's shape: one declaration of the methods, no import cycle, one schema section per
stage with the schema owning every default, eps resolved in one place, a base that is not the
demo, and rules that each log, benchmark and name the module they run."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
import typing

import pytest
import yaml

from conftest import LONGEST_FIRST, REPO, XDIST_GROUPS, rule_blocks, schema_defaults, settings
from isaac import runs
from isaac.assess import AssessConfig
from isaac.bootstrap import SummaryConfig
from isaac.dpo import DpoConfig
from isaac.embed import EmbedConfig
from isaac.experiments import ExperimentsConfig
from isaac.generate import GenerateConfig
from isaac.ingest import CorpusConfig
from isaac.judge import JudgeConfig
from isaac.likelihood import LikelihoodConfig
from isaac.models import GeneratorConfig
from isaac.neighbours import NeighboursConfig
from isaac.plots import FIGURES, REDRAW_RULES, ReportConfig
from isaac.prompts import PromptsConfig
from isaac.sample import SampleConfig
from isaac.settings import STRUCTURE_KEYS
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
    methods = SCHEMA["properties"]["sweep"]["properties"]["methods"]["items"]["enum"]
    assert tuple(methods) == runs.METHODS
    assert tuple(schema_defaults("sweep")["methods"]) == runs.METHODS
    baselines = SCHEMA["properties"]["summary"]["properties"]["baselines"]["items"]["enum"]
    assert tuple(baselines) == runs.METHODS


def test_run_ids_match_the_wildcard_constraints():
    pattern = re.escape(runs.RUN).replace(r"\{", "{").replace(r"\}", "}")
    for key, value in runs.WILDCARD_PATTERNS.items():
        pattern = pattern.replace("{" + key + "}", f"(?P<{key}>{value})")
    ids = runs.run_ids(runs.METHODS, [0.1, 1, 2.5e-3], [1, 5], [0, 12])
    n_free = len(runs.TAU_FREE_METHODS)
    # tau-free methods once per (m, seed)
    assert len(ids) == n_free * 2 * 2 + (len(runs.METHODS) - n_free) * 3 * 2 * 2
    for run in ids:
        match = re.fullmatch(pattern, run)
        assert match, run
        assert match["method"] in runs.METHODS
        assert runs.fmt_tau(float(match["tau"])) == match["tau"]
    assert not re.fullmatch(pattern, "isaac_extra/tau1.0-m1-seed0")


# The settings dataclass of every schema section a stage reads; the other sections (sweep,
# ngrams) hold only structure keys.
SECTIONS = {
    "corpus": CorpusConfig,
    "tokenize": TokenizeConfig,
    "likelihood": LikelihoodConfig,
    "embed": EmbedConfig,
    "neighbours": NeighboursConfig,
    "assess": AssessConfig,
    "sample": SampleConfig,
    "generator": GeneratorConfig,
    "train": TrainConfig,
    "dpo": DpoConfig,
    "prompts": PromptsConfig,
    "generate": GenerateConfig,
    "summary": SummaryConfig,
    "report": ReportConfig,
    "experiments": ExperimentsConfig,
    "judge": JudgeConfig,
}


def schema_keys(schema: dict) -> dict:
    """{key: nested keys or None} of an object schema, recursively."""
    return {
        key: schema_keys(prop) if "properties" in prop else None
        for key, prop in schema["properties"].items()
    }


def dataclass_keys(cls) -> dict:
    """{field: nested fields or None} of a settings dataclass (a nested dataclass, or a nested
    dataclass or None, gives its own fields)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        nested = [
            h
            for h in (hints[field.name], *typing.get_args(hints[field.name]))
            if dataclasses.is_dataclass(h)
        ]
        out[field.name] = dataclass_keys(nested[0]) if nested else None
    return out


def test_every_section_is_a_stage_dataclass_or_structure_only():
    for section, schema in SCHEMA["properties"].items():
        keys = schema_keys(schema)
        structure = set(STRUCTURE_KEYS.get(section, ()))
        assert structure <= set(keys), section
        if section not in SECTIONS:
            assert structure == set(keys), f"{section}: no stage reads {set(keys) - structure}"


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_section_dataclass_has_exactly_the_section_keys(section):
    keys = schema_keys(SCHEMA["properties"][section])
    for key in STRUCTURE_KEYS.get(section, ()):
        del keys[key]
    # nested sections (corpus.demo, corpus.pollute, generator.tiny) as nested dataclasses;
    # a mapping of free keys (corpus.fields) as a dict
    if section == "corpus":
        keys["fields"] = None
    assert dataclass_keys(SECTIONS[section]) == keys
    assert settings(SECTIONS[section], section) == settings(SECTIONS[section], section)


def rule_sections() -> dict[str, set[str]]:
    """{rule: the sections its jobs' --config and --generator come from}, following the
    helpers (rules/helpers/*.smk) that call stage_config."""
    helpers = {}
    for smk in sorted((REPO / "rules" / "helpers").glob("*.smk")):
        for name, body in re.findall(
            r"^def (\w+)\(.*?\):\n((?:(?:    .*)?\n)+)", smk.read_text(), re.M
        ):
            helpers[name] = set(re.findall(r'stage_config\("(\w+)"', body))
    out = {}
    for name, block in rule_blocks():
        params = re.search(r"^    params:\n((?:        .*\n)+)", block, re.M)
        found = set()
        for line in params.group(1).splitlines() if params else []:
            if re.match(r"\s+(config|generator)=", line):
                found |= set(re.findall(r'stage_config\("(\w+)"', line))
                found |= {s for h in re.findall(r"(\w+)\(", line) for s in helpers.get(h, ())}
        out[name] = found
    return out


def test_every_rule_passes_whole_sections_through_stage_config():
    """No slice built by hand: the job settings come only from stage_config (one section,
    nulling what the job cannot depend on), and a stage module parses that section's class."""
    for name, block in rule_blocks():
        params = re.search(r"^    params:\n((?:        .*\n)+)", block, re.M)
        text = params.group(1) if params else ""
        assert "config[" not in text and "json.dumps" not in text, name
    sections = rule_sections()
    assert sections["train"] == sections["train_round"] == {"train", "generator"}
    assert sections["encoder_model2vec"] == sections["embed"] == {"embed"}
    assert sections["ingest"] == {"corpus"} and sections["score"] == {"generator"}
    assert sections["head_safety"] == sections["summary"] == {"summary"}
    for name, block in rule_blocks():
        modules = set(re.findall(r"\{ISAAC\}\.(\w+)", block))
        for section in sections[name]:
            source = "".join((SRC / f"{m}.py").read_text() for m in modules)
            assert SECTIONS[section].__name__ in source, (name, section)
    rule_files = {p.name: p.read_text() for p in (REPO / "rules").rglob("*.smk")}
    text = "".join(rule_files.values())
    assert "def config_json" not in text and text.count("json.dumps(") == 1
    # the keys a job cannot depend on are chosen in one helper, unused_keys (rules/common.smk)
    assert [name for name, t in rule_files.items() if "section_settings(" in t] == ["common.smk"]
    assert text.count("def unused_keys(") == 1


def test_eps_is_resolved_only_by_the_assess_stage():
    sources = {
        p: p.read_text()
        for p in [
            *(REPO / "rules").rglob("*.smk"),
            *SRC.glob("*.py"),
            *(REPO / "bench").glob("*.py"),
        ]
    }
    resolvers = [
        p.name for p, text in sources.items() if re.search(r"def (\w*_eps|eps_from\w*)\(", text)
    ]
    assert resolvers == ["assess.py"]
    assert "eps_defaults" not in (REPO / "config" / "schema.yaml").read_text()
    assert "eps" in dataclass_keys(AssessConfig) and "eps" not in dataclass_keys(SampleConfig)


def leaves(mapping: dict, prefix=()) -> dict:
    """{(section, key, ...): value} of the leaves of a nested mapping."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


# Config files layered on the schema's defaults alone (the others are layers on one of these).
BASE_LAYERS = ("demo.yaml", "diasafety.yaml", "diasafety-generations.yaml")


@pytest.mark.parametrize("name", BASE_LAYERS)
def test_a_config_on_the_base_states_only_what_it_changes(name):
    defaults = leaves({s: schema_defaults(s) for s in SCHEMA["properties"]})
    stated = leaves(yaml.safe_load((REPO / "config" / name).read_text()))
    restated = [".".join(k) for k, v in stated.items() if k in defaults and defaults[k] == v]
    assert restated in ([], ["corpus.name", "corpus.format"]), restated


def test_the_snakefile_loads_the_demo_only_without_a_config_file():
    snakefile = (REPO / "Snakefile").read_text()
    assert re.search(
        r"if not workflow\.overwrite_configfiles:\n\n?\s+configfile: .*\"demo\.yaml\"", snakefile
    )
    assert not (REPO / "config" / "config.yaml").exists()


def test_the_figures_are_declared_once():
    common = (REPO / "rules" / "common.smk").read_text()
    assert "from isaac.plots import FIGURES" in common and '"longtail_responses"' not in common
    assert "PLOT_RULES" not in (REPO / "Makefile").read_text()
    rules = dict(rule_blocks())
    for name, rule in FIGURES.items():
        assert f'"{name}.png"' in rules[rule], (name, rule)
    assert set(REDRAW_RULES) == {"summary", *FIGURES.values()}


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
        frozen = [
            d
            for d in node.decorator_list
            if isinstance(d, ast.Call)
            and any(k.arg == "frozen" and k.value.value is True for k in d.keywords)
        ]
        assert frozen, f"{where} is not a frozen dataclass"
        defaults = [s for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None]
        assert not defaults, f"{where}: defaults belong to config/schema.yaml"


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
        "train_round": "train",
        "train_dpo": "dpo",
        "judge_heldout": "judge",
        "embed_shard": "embed",
        "assess_global": "assess",
        "pollution_table": "experiments",
        "tempering_table": "experiments",
        "head_safety_table": "experiments",
        "encoders_table": "experiments",
        "trained_encoders_table": "experiments",
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
        # a wildcard or nothing to configure
        settings_free = {"ngrams", "generator_base", "constant", "judge_probe", "pairs_summary"}
        assert "--config {params.config:q}" in block or name in settings_free, name
    assert job_rules >= 18


def test_shell_commands_prepend_to_pythonpath():
    common = (REPO / "rules" / "common.smk").read_text()
    assert "${{{{PYTHONPATH:+:$PYTHONPATH}}}}" in common


def test_the_suites_worker_groups_name_test_modules_that_exist():
    """conftest's scheduling lists (a renamed module would silently lose its place)."""
    modules = {path.stem for path in (REPO / "tests").glob("test_*.py")}
    named = {*LONGEST_FIRST, *XDIST_GROUPS, *XDIST_GROUPS.values()}
    assert named <= modules, named - modules


def test_the_snakefiles_imports_leave_pyplot_for_the_figure_jobs():
    """The Snakefile reads FIGURES from isaac.plots at every Snakemake start; pyplot comes only
    when a figure is drawn, and then on the Agg backend."""
    script = (
        "import sys\n"
        "from isaac import plots\n"
        "print('matplotlib' in sys.modules)\n"
        "from isaac.plots import plt\n"
        "import matplotlib\n"
        "print(plt.__name__, matplotlib.get_backend())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "svg"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["False", "matplotlib.pyplot Agg"], proc.stdout
