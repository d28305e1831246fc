"""Scores against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from isaac.cli import run
from isaac.generator_tokenizer import train_tokenizer
from isaac.judge import JudgeConfig, build_judge
from isaac.models import GeneratorConfig, build_generator, save_generator
from isaac.score import ScoreConfig, distinct_n, main, mean_len, perplexity, score, words
from isaac.settings import to_json

from conftest import schema_defaults, settings

TINY = settings(GeneratorConfig, "generator", model="tiny-gpt2",
                tiny={**schema_defaults("generator")["tiny"], "n_layer": 1, "n_head": 2,
                      "n_embd": 16})
# Scoring reads the train stage's max_length (the perplexity encodes pairs as training did).
MAX_LENGTH = schema_defaults("train")["max_length"]


def test_words_and_distinct_n_by_hand():
    texts = ["I like cats.", "i like dogs"]
    assert words(texts[0]) == ["i", "like", "cats", "."]
    # unigrams: i, like, cats, ., i, like, dogs -> 5 unique / 7
    assert distinct_n(texts, 1) == pytest.approx(5 / 7)
    # bigrams: (i like), (like cats), (cats .), (i like), (like dogs) -> 4 / 5
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)
    assert distinct_n(["", "one"], 2) == 0.0
    assert mean_len(texts) == pytest.approx(3.5)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tmp_path):
    tok = train_tokenizer(["hello there", "general kenobi"] * 5, 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    gen = build_generator(TINY, tmp_path / "tok", seed=0)
    with torch.no_grad():
        for p in gen.model.parameters():
            p.zero_()  # all logits 0: every token has probability 1 / vocab
    ppl = perplexity(gen, ["hello", "general there"], ["there", "kenobi hello"], MAX_LENGTH,
                     batch_size=1)
    assert ppl == pytest.approx(len(tok), rel=1e-5)


def test_perplexity_ignores_prompt_tokens(tmp_path):
    tok = train_tokenizer(["aa bb cc dd"] * 5, 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    gen = build_generator(TINY, tmp_path / "tok", seed=0)
    gen.model.eval()
    # the reference tokens' NLL only; batched and single give the same corpus value
    a = perplexity(gen, ["aa", "bb cc dd aa"], ["bb", "cc"], MAX_LENGTH, batch_size=2)
    b = perplexity(gen, ["aa", "bb cc dd aa"], ["bb", "cc"], MAX_LENGTH, batch_size=1)
    assert a == pytest.approx(b, rel=1e-5) and a > 1


class FixedJudge:
    def predict_proba(self, contexts, responses):
        return np.array([0.9 if "idiot" in r else 0.2 for r in responses])


def test_score_fields_by_hand():
    gens = pd.DataFrame({"id": ["1", "2", "3", "4"], "prompt": ["p"] * 4,
                         "reference": ["r"] * 4,
                         "generation": ["you idiot", "nice", "nice", None]})
    s = score(gens, FixedJudge())
    assert s["unsafe_rate"] == 0.25 and s["safety_score"] == 0.75
    assert s["mean_unsafe_prob"] == pytest.approx((0.9 + 0.2 * 3) / 4)
    assert s["distinct_1"] == pytest.approx(3 / 4) and s["mean_len"] == pytest.approx(1.0)
    assert s["empty_share"] == 0.25 and 0 <= s["lexical_unsafe_rate"] <= 1
    assert "ppl" not in s


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A judge, an untrained tiny model and two generations (one unsafe)."""
    tmp = tmp_path_factory.mktemp("score")
    responses = ["that sounds lovely", "good luck with it", "you stupid idiot", "shut up idiot"]
    rows = [{"id": f"{sp}{i}", "split": sp, "prompt": "hi", "response": r,
             "label": "unsafe" if "idiot" in r else "safe"}
            for sp in ("train", "test") for i, r in enumerate(responses * 2)]
    pd.DataFrame(rows).to_parquet(tmp / "c.parquet")
    build_judge(tmp / "c.parquet", settings(JudgeConfig, "judge"), tmp / "judge")
    tok = train_tokenizer(responses * 3, 300)
    tok.save_pretrained(str(tmp / "tok"))
    gen = build_generator(TINY, tmp / "tok", seed=0)
    save_generator(gen, tmp / "model")
    pd.DataFrame({"id": ["a", "b"], "prompt": ["hi", "hi"], "reference": responses[:2],
                  "generation": ["you stupid idiot", "that sounds lovely"]}).to_parquet(
        tmp / "g.parquet")
    return tmp


def _args(inputs, *run_args, config=None):
    config = to_json(ScoreConfig(max_length=MAX_LENGTH)) if config is None else config
    return ["--generations", str(inputs / "g.parquet"), "--judge", str(inputs / "judge"),
            *run_args, "--config", config]


def test_cli_writes_all_keys(tmp_path, inputs, capsys):
    out = tmp_path / "scores" / "sft" / "tau1.0-m1-seed0.json"
    main([*_args(inputs, "--model", str(inputs / "model"),
                 "--method", "sft", "--tau", "1.0", "--m", "1", "--seed", "0"),
          "--out", str(out)])
    s = json.loads(out.read_text())
    assert {"unsafe_rate", "safety_score", "lexical_unsafe_rate", "distinct_1", "distinct_2",
            "mean_len", "ppl", "method", "tau", "m", "seed"} <= set(s)
    assert s["unsafe_rate"] == 0.5 and s["method"] == "sft" and math.isfinite(s["ppl"])
    assert capsys.readouterr().out == ""  # it logs instead of printing the JSON


def test_cli_records_the_run_wildcards(tmp_path, inputs):
    """The run's identity comes from --method --tau --m --seed (no --model: no perplexity)."""
    out = tmp_path / "s.json"
    main([*_args(inputs, "--method", "isaac_paper", "--tau", "0.3", "--m", "5", "--seed", "2"),
          "--out", str(out)])
    s = json.loads(out.read_text())
    assert {k: s[k] for k in ("method", "tau", "m", "seed")} == {
        "method": "isaac_paper", "tau": 0.3, "m": 5, "seed": 2}
    assert isinstance(s["m"], int) and isinstance(s["seed"], int) and "ppl" not in s


RUN = ["--method", "isaac", "--tau", "0.3", "--m", "5", "--seed", "2"]


@pytest.mark.parametrize("run_args, config, problem", [
    (["--method", "nope", *RUN[2:]], None, "--method"),
    ([*RUN[:3], "x0.3", *RUN[4:]], None, "--tau"),
    ([*RUN[:4], *RUN[6:]], None, "--m"),
    (RUN, "{}", "--config: missing key(s) max_length"),
    (RUN, json.dumps({"max_length": MAX_LENGTH, "batch_size": 8}),
     "--config: unknown key(s) batch_size"),
    (RUN, json.dumps({"max_length": "96"}), "--config.max_length"),
])
def test_cli_rejects_bad_wildcards_and_config(tmp_path, inputs, capsys, run_args, config,
                                              problem):
    out = tmp_path / "s.json"
    with pytest.raises(SystemExit) as exit_:
        run(main, [*_args(inputs, *run_args, config=config), "--out", str(out)])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()
