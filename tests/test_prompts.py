"""The prompts every run answers: distinct test contexts, unseen in train by default."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac import prompts
from isaac.cli import run
from isaac.io import InputError
from isaac.prompts import SUBSETS, PromptsConfig, main, select_prompts
from isaac.settings import to_json


def config(**overrides) -> PromptsConfig:
    return settings(PromptsConfig, "prompts", **overrides)


def rows(*triples) -> pd.DataFrame:
    """(id, split, prompt) triples as a corpus table."""
    return pd.DataFrame(
        {
            "id": [t[0] for t in triples],
            "split": [t[1] for t in triples],
            "prompt": [t[2] for t in triples],
            "response": [f"r-{t[0]}" for t in triples],
        }
    )


# Test ids deliberately out of order; contexts repeat under other case and whitespace.
CORPUS = rows(
    ("x1", "train", "Hello   there"),
    ("x2", "train", "how are you?"),
    ("x3", "val", "a val context"),
    ("t5", "test", "What now ?"),
    ("t2", "test", "hello there"),  # seen: train has it up to case and whitespace
    ("t4", "test", "what   NOW ?"),  # the same context as t5 and t1, an earlier id than t5
    ("t1", "test", " what now ?\n"),  # the first row by id of that context
    ("t3", "test", "a val context"),  # val does not make a context seen
    ("t6", "test", "How are\tyou?"),  # seen
    ("t7", "test", "something else"),
)


def test_schema_defaults_are_unseen_and_every_prompt():
    assert config() == PromptsConfig(select="unseen", n_prompts=None)
    assert schema_defaults("prompts")["select"] == "unseen"


def test_test_rows_are_sorted_by_id_with_normalised_keys_and_seen():
    t = prompts.held_out_rows(CORPUS)  # imported by module: pytest would collect held_out_rows
    assert t["id"].tolist() == ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    assert t["key"].tolist() == [
        "what now ?",
        "hello there",
        "a val context",
        "what now ?",
        "what now ?",
        "how are you?",
        "something else",
    ]
    assert t["seen"].tolist() == [False, True, False, False, False, True, False]
    assert t["prompt"].iloc[0] == " what now ?\n"  # the text itself is left as it is


def test_unseen_prompts_are_the_distinct_unseen_contexts_first_row_by_id():
    p = select_prompts(CORPUS, config())
    assert p.columns.tolist() == ["id", "prompt", "seen"]
    assert p["id"].tolist() == ["t1", "t3", "t7"]
    assert p["prompt"].tolist() == [" what now ?\n", "a val context", "something else"]
    assert not p["seen"].any() and p["seen"].dtype == bool


def test_all_prompts_keep_the_seen_ones_marked():
    p = select_prompts(CORPUS, config(select="all"))
    assert p["id"].tolist() == ["t1", "t2", "t3", "t6", "t7"]
    assert p["seen"].tolist() == [False, True, False, True, False]
    assert p["prompt"].tolist()[1] == "hello there"


def test_a_seen_context_is_dropped_whole_not_only_its_first_row():
    """Distinct before unseen: a context seen in train never comes back through a later row."""
    corpus = rows(
        ("a", "train", "Same"),
        ("b", "test", "same"),
        ("c", "test", "SAME "),
        ("d", "test", "other"),
    )
    assert select_prompts(corpus, config())["id"].tolist() == ["d"]


def test_ids_sort_as_text():
    corpus = rows(("t10", "test", "ten"), ("t9", "test", "nine"), ("t1", "test", "one"))
    assert select_prompts(corpus, config())["id"].tolist() == ["t1", "t10", "t9"]


@pytest.mark.parametrize(
    "subset, n, expected",
    [
        ("unseen", 2, ["t1", "t3"]),
        ("unseen", 1, ["t1"]),
        ("unseen", 50, ["t1", "t3", "t7"]),
        ("all", 3, ["t1", "t2", "t3"]),
        ("all", None, ["t1", "t2", "t3", "t6", "t7"]),
    ],
)
def test_n_prompts_keeps_the_first_n_of_the_subset(subset, n, expected):
    assert select_prompts(CORPUS, config(select=subset, n_prompts=n))["id"].tolist() == expected


def test_no_test_split_is_a_clear_error():
    corpus = rows(("a", "train", "p"), ("b", "val", "q"))
    with pytest.raises(InputError, match="my.parquet: no rows with split 'test'"):
        select_prompts(corpus, config(), "my.parquet")
    with pytest.raises(InputError, match="split 'test'"):
        prompts.held_out_rows(corpus)


def test_a_selection_without_an_unseen_prompt_is_refused_before_any_training():
    """Safety is scored on unseen prompts: prompts with none would fail after training."""
    corpus = rows(("a", "train", "Hi  there"), ("b", "test", "hi there"), ("c", "test", "HI THERE"))
    for subset in SUBSETS:
        with pytest.raises(
            InputError,
            match="c.parquet: no selected test prompt is unseen.*"
            "every test context also occurs in train",
        ):
            select_prompts(corpus, config(select=subset), "c.parquet")
    some_unseen = rows(("a", "train", "hi"), ("b", "test", "hi"), ("c", "test", "new"))
    with pytest.raises(
        InputError, match="the first 1 test contexts all occur in train: raise prompts.n_prompts"
    ):
        select_prompts(some_unseen, config(select="all", n_prompts=1))
    p = select_prompts(some_unseen, config(select="all", n_prompts=2))
    assert p["id"].tolist() == ["b", "c"] and p["seen"].tolist() == [True, False]


def test_unknown_subset_is_a_clear_error():
    with pytest.raises(InputError, match="prompts.select: 'seen' is not one of unseen, all"):
        select_prompts(CORPUS, PromptsConfig(select="seen", n_prompts=None))


def _write(tmp_path, corpus) -> str:
    corpus.to_parquet(tmp_path / "corpus.parquet")
    return str(tmp_path / "corpus.parquet")


def test_cli_writes_the_prompts_table(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="isaac.prompts")
    out = tmp_path / "results" / "prompts.parquet"
    main(
        [
            "--corpus",
            _write(tmp_path, CORPUS),
            "--config",
            to_json(config(select="all")),
            "--out",
            str(out),
        ]
    )
    df = pd.read_parquet(out)
    assert df.columns.tolist() == ["id", "prompt", "seen"]
    assert df["id"].tolist() == ["t1", "t2", "t3", "t6", "t7"]
    assert df["seen"].tolist() == [False, True, False, True, False]
    assert any(r.name == "isaac.prompts" and "2 seen" in r.getMessage() for r in caplog.records)
    first = out.read_bytes()
    main(
        [
            "--corpus",
            _write(tmp_path, CORPUS),
            "--config",
            to_json(config(select="all")),
            "--out",
            str(out),
        ]
    )
    assert out.read_bytes() == first  # deterministic bytes


NO_TEST = rows(("a", "train", "p"))
ALL_SEEN = rows(("a", "train", "p"), ("b", "test", "P"))


@pytest.mark.parametrize(
    "corpus, cfg, problem",
    [
        (NO_TEST, to_json(PromptsConfig("unseen", None)), "no rows with split 'test'"),
        (ALL_SEEN, to_json(PromptsConfig("unseen", None)), "no selected test prompt is unseen"),
        (CORPUS, json.dumps({"select": "unseen"}), "--config: missing key(s) n_prompts"),
        (CORPUS, json.dumps({**schema_defaults("generate")}), "--config: unknown key(s)"),
        (CORPUS, json.dumps({"select": "unseen", "n_prompts": "5"}), "--config.n_prompts"),
    ],
)
def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys, corpus, cfg, problem):
    out = tmp_path / "results" / "prompts.parquet"
    with pytest.raises(SystemExit) as exit_:
        run(main, ["--corpus", _write(tmp_path, corpus), "--config", cfg, "--out", str(out)])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.parent.exists()


def test_cli_needs_the_corpus_columns(tmp_path, capsys):
    pd.DataFrame({"id": ["a"], "prompt": ["p"]}).to_parquet(tmp_path / "c.parquet")
    out = tmp_path / "p.parquet"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "--corpus",
                str(tmp_path / "c.parquet"),
                "--config",
                to_json(config()),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 2 and "missing column(s) split" in capsys.readouterr().err
    assert not out.exists()
