"""Safe artefacts and safe commands, checked over the whole source tree."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import property_settings
from isaac import runs
from isaac.workflow_config import refuse_duplicate_keys, refuse_non_finite

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


@pytest.mark.parametrize(
    "name", [".", "..", ".hidden", "../up", "a/b", "", "demo\n", "de\tmo", "a" * 101]
)
def test_a_corpus_name_outside_results_is_refused(name):
    config = {"corpus": {"name": name}}
    with pytest.raises(jsonschema.ValidationError, match="name"):
        jsonschema.validate(config, SCHEMA)


@pytest.mark.parametrize("name", ["demo", "diasafety-polluted-0.10", "my_corpus.v2", "a" * 100])
def test_plain_corpus_names_pass(name):
    jsonschema.validate({"corpus": {"name": name}}, SCHEMA)


# The same examples on every run, few of them (CI has two cores).
PROPERTY = property_settings(max_examples=200)
TAU_SCHEMA = SCHEMA["properties"]["sweep"]["properties"]["taus"]["items"]


@PROPERTY
@given(st.floats(TAU_SCHEMA["minimum"], TAU_SCHEMA["maximum"]))
def test_every_tau_the_schema_allows_is_a_file_name_that_reads_back(tau):
    jsonschema.validate(tau, TAU_SCHEMA)
    spelled = runs.fmt_tau(tau)
    assert re.fullmatch(runs.WILDCARD_PATTERNS["tau"], spelled), spelled
    assert float(spelled) == tau


@pytest.mark.parametrize("tau", [1e16, 1e300, float("inf"), 0.0, 5e-324, -1.0])
def test_a_tau_outside_the_schema_is_refused(tau):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sweep": {"taus": [tau]}}, SCHEMA)


def test_a_tau_the_schema_refuses_was_a_name_the_rules_cannot_match():
    """Why the bounds: above 1e16 the spelling has a "+" exponent, which no run id matches."""
    assert not re.fullmatch(runs.WILDCARD_PATTERNS["tau"], runs.fmt_tau(1e16))


def test_nan_is_refused_with_its_key(capsys):
    with pytest.raises(SystemExit) as stop:
        refuse_non_finite({"sweep": {"taus": [1.0, float("nan")]}})
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: sweep.taus[1]: nan is not a finite number\n"
    refuse_non_finite({"sweep": {"taus": [1.0, 1e300]}, "corpus": {"name": "demo"}})


SEED_KEYS = [
    ("sweep", "seeds"),
    ("corpus", "demo", "seed"),
    ("corpus", "pollute", "seed"),
    ("judge", "cross_encoder", "seed"),
    ("summary", "seed"),
]


def nested(keys, value):
    """{keys[0]: {keys[1]: ... value}}, a seed list for sweep.seeds."""
    value = [value] if keys == ("sweep", "seeds") else value
    for key in reversed(keys):
        value = {key: value}
    return value


@pytest.mark.parametrize("keys", SEED_KEYS, ids=".".join)
def test_seeds_are_refused_outside_0_to_2_to_the_32_minus_1(keys):
    jsonschema.validate(nested(keys, runs.SEED_MAX), SCHEMA)
    for seed in (-1, runs.SEED_MAX + 1):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(nested(keys, seed), SCHEMA)


@pytest.mark.parametrize(
    "sweep", [{"seeds": [0, 0]}, {"taus": [1, 1.0]}, {"ms": [2, 2]}, {"methods": ["raw", "raw"]}]
)
def test_a_sweep_list_with_an_entry_twice_is_refused(sweep):
    with pytest.raises(jsonschema.ValidationError, match="non-unique"):
        jsonschema.validate({"sweep": sweep}, SCHEMA)


def test_tempering_seeds_that_meet_another_seed_or_pass_2_to_the_32_are_named():
    assert runs.round_seed_clash([0, 1000], 1) is None  # one round: each seed its own targets
    assert runs.round_seed_clash([0, 1, 2], 3) is None
    assert "seeds 0 and 1000: round 2 of seed 0" in runs.round_seed_clash([1000, 0], 2)
    assert "seeds 5 and 2005: round 3 of seed 5" in runs.round_seed_clash([5, 2005], 3)
    assert runs.round_seed_clash([5, 2005], 2) is None
    assert runs.round_seed_clash([runs.SEED_MAX - 1000], 2) is None
    assert "above 4294967295" in runs.round_seed_clash([runs.SEED_MAX - 999], 2)


@pytest.mark.parametrize(
    "text, line",
    [
        (
            "corpus: {name: a}\ncorpus: {name: b}\n",
            "line 2: key 'corpus' given again (first on line 1)",
        ),
        ("sweep:\n  seeds: [0]\n  taus: [1]\n  seeds: [1]\n", "line 4: key 'seeds' given again"),
        ('{"sweep": {"seeds": [0], "seeds": [1]}}', "key 'seeds' given twice in one object"),
    ],
)
def test_a_config_file_giving_a_key_twice_is_refused_naming_file_and_line(
    tmp_path, capsys, text, line
):
    path = tmp_path / "layer.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stop:
        refuse_duplicate_keys(path)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {line}") and err.count("\n") == 1, err


def test_config_files_of_the_repository_give_no_key_twice():
    for path in sorted((REPO / "config").glob("*.yaml")) + [
        REPO / "tests" / "config" / "tiny.yaml"
    ]:
        refuse_duplicate_keys(path)
