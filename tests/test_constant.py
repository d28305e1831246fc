"""The constant baseline: one label-free reply, the most frequent normalised train response."""

from __future__ import annotations

import pandas as pd
import pytest

from isaac import constant
from isaac.io import InputError


def test_the_reply_is_the_most_frequent_normalised_response_as_first_spelled():
    responses = ["Sure.", "I'm sorry to hear that.", "i'm  sorry to hear that. ", "sure."]
    responses += ["I'M SORRY TO HEAR THAT."]
    assert constant.constant_reply(responses) == "I'm sorry to hear that."
    # a tie goes to the text that occurs first in corpus order
    assert constant.constant_reply(["b", "a", "A", "B "]) == "b"
    assert constant.constant_reply(["only"]) == "only"


def write_inputs(tmp_path, labels):
    corpus = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(7)],
            "split": ["train"] * 5 + ["test"] * 2,
            "prompt": [f"p{i}" for i in range(7)],
            # the test split's response is the most frequent overall: only train counts
            "response": ["Ok.", "That's awful", "ok. ", "that's  AWFUL", "OK."] + ["x", "x"],
            "label": labels,
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet", index=False)
    prompts = pd.DataFrame({"id": ["c5", "c6"], "prompt": ["p5", "p6"], "seen": [False, True]})
    prompts.to_parquet(tmp_path / "prompts.parquet", index=False)
    return [
        "--corpus",
        str(tmp_path / "corpus.parquet"),
        "--prompts",
        str(tmp_path / "prompts.parquet"),
    ]


def test_cli_answers_every_prompt_with_the_reply_whatever_the_labels(tmp_path):
    safe = ["safe"] * 7
    inputs = write_inputs(tmp_path, safe)
    constant.main([*inputs, "--out", str(tmp_path / "a.parquet")])
    table = pd.read_parquet(tmp_path / "a.parquet")
    # the generate stage's columns: the prompts table's, then the generation
    assert list(table.columns) == ["id", "prompt", "seen", "generation"]
    assert table["generation"].tolist() == ["Ok.", "Ok."]
    assert table["id"].tolist() == ["c5", "c6"]
    # label-free: other labels give the same bytes
    inputs = write_inputs(tmp_path, ["unsafe", "safe", "unsafe", None, "unsafe", "safe", None])
    constant.main([*inputs, "--out", str(tmp_path / "b.parquet")])
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_cli_without_prompts_is_an_input_error_and_writes_nothing(tmp_path):
    inputs = write_inputs(tmp_path, ["safe"] * 7)
    pd.DataFrame({"id": [], "prompt": [], "seen": []}).to_parquet(tmp_path / "prompts.parquet")
    with pytest.raises(InputError, match="prompts.parquet: no prompts"):
        constant.main([*inputs, "--out", str(tmp_path / "c.parquet")])
    assert not (tmp_path / "c.parquet").exists()
