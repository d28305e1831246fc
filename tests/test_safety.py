"""Safe artefacts and safe commands, checked over the whole source tree."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sorted([*(REPO / "src" / "isaac").glob("*.py"), *(REPO / "bench").glob("*.py")])
RULES = sorted([REPO / "Snakefile", *(REPO / "rules").rglob("*.smk")])
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())

UNSAFE_CODE = {
    r"\bimport pickle\b|\bpickle\.load": "pickle",
    r"\bjoblib\.load\b": "joblib.load (a pickle)",
    r"allow_pickle\s*=\s*True": "np.load with allow_pickle=True",
    r"trust_remote_code\s*=\s*True": "trust_remote_code=True",
    r"\bcloudpickle\b|\bdill\b": "another pickle library",
}


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: p.name)
def test_no_pickle_no_remote_code(path):
    text = path.read_text()
    for pattern, what in UNSAFE_CODE.items():
        assert not re.search(pattern, text), f"{path.relative_to(REPO)} uses {what}"
    for call in re.findall(r"torch\.load\([^)]*\)", text):
        assert "weights_only=True" in call, f"{path.relative_to(REPO)}: {call}"


def shell_blocks(text: str) -> list[str]:
    """The shell: sections of a rule file (up to the next rule or top-level statement)."""
    return re.findall(r"^\s+shell:\n((?:\s{8}.*\n?)+)", text, re.M)


def unquoted_fields(block: str) -> list[str]:
    """{input...}, {output...}, {params...}, {wildcards...}, {log} fields without :q."""
    fields = re.findall(r"(?<!\{)\{([A-Za-z_][\w.]*)(:\w+)?\}(?!\})", block)
    values = {"input", "output", "params", "wildcards", "log"}
    return [name for name, spec in fields if name.split(".")[0] in values and spec != ":q"]


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_value_reaches_the_shell_quoted(path):
    for block in shell_blocks(path.read_text()):
        assert not unquoted_fields(block), f"{path.relative_to(REPO)}: {unquoted_fields(block)}"


def test_the_quoting_check_finds_an_unquoted_value():
    rule = 'rule x:\n    shell:\n        "tool {input.a:q} --b {params.b} > {log:q}"\n'
    (block,) = shell_blocks(rule)
    assert unquoted_fields(block) == ["params.b"]


def test_the_rules_have_shell_commands_to_check():
    assert sum(len(shell_blocks(p.read_text())) for p in RULES) >= 20
    assert any(
        "--init={params.init:q}" in block for p in RULES for block in shell_blocks(p.read_text())
    )


@pytest.mark.parametrize("name", [".", "..", ".hidden", "../up", "a/b", ""])
def test_a_corpus_name_outside_results_is_refused(name):
    config = {"corpus": {"name": name}}
    with pytest.raises(jsonschema.ValidationError, match="name"):
        jsonschema.validate(config, SCHEMA)


@pytest.mark.parametrize("name", ["demo", "diasafety-polluted-0.10", "my_corpus.v2"])
def test_plain_corpus_names_pass(name):
    jsonschema.validate({"corpus": {"name": name}}, SCHEMA)
