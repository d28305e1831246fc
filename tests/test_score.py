"""Scores against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from isaac.generator import build_generator, save_generator, train_tokenizer
from isaac.io import InputError
from isaac.judge import build_judge
from isaac.score import distinct_n, main, mean_len, parse_run, perplexity, score, words


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
    gen = build_generator({"model": "tiny-gpt2",
                           "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 16}}, tmp_path / "tok")
    with torch.no_grad():
        for p in gen.model.parameters():
            p.zero_()  # all logits 0: every token has probability 1 / vocab
    ppl = perplexity(gen, ["hello", "general there"], ["there", "kenobi hello"], batch_size=1)
    assert ppl == pytest.approx(len(tok), rel=1e-5)


def test_perplexity_ignores_prompt_tokens(tmp_path):
    tok = train_tokenizer(["aa bb cc dd"] * 5, 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    gen = build_generator({"model": "tiny-gpt2",
                           "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 16}}, tmp_path / "tok")
    gen.model.eval()
    # the reference tokens' NLL only; batched and single give the same corpus value
    a = perplexity(gen, ["aa", "bb cc dd aa"], ["bb", "cc"], batch_size=2)
    b = perplexity(gen, ["aa", "bb cc dd aa"], ["bb", "cc"], batch_size=1)
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


def test_parse_run():
    assert parse_run("isaac_paper/tau0.3-m5-seed2") == {"method": "isaac_paper", "tau": 0.3,
                                                        "m": 5, "seed": 2}
    with pytest.raises(InputError):
        parse_run("isaac/0.3")


def test_cli_writes_all_keys(tmp_path):
    responses = ["that sounds lovely", "good luck with it", "you stupid idiot", "shut up idiot"]
    rows = [{"id": f"{sp}{i}", "split": sp, "prompt": "hi", "response": r,
             "label": "unsafe" if "idiot" in r else "safe"}
            for sp in ("train", "test") for i, r in enumerate(responses * 2)]
    pd.DataFrame(rows).to_parquet(tmp_path / "c.parquet")
    build_judge(tmp_path / "c.parquet", "tfidf-lr", tmp_path / "judge")
    tok = train_tokenizer(responses * 3, 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    gen = build_generator({"model": "tiny-gpt2",
                           "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 16}}, tmp_path / "tok")
    save_generator(gen, tmp_path / "model")
    pd.DataFrame({"id": ["a", "b"], "prompt": ["hi", "hi"], "reference": responses[:2],
                  "generation": ["you stupid idiot", "that sounds lovely"]}).to_parquet(
        tmp_path / "g.parquet")
    out = tmp_path / "scores" / "sft" / "tau1.0-m1-seed0.json"
    main(["--generations", str(tmp_path / "g.parquet"), "--judge", str(tmp_path / "judge"),
          "--model", str(tmp_path / "model"), "--run", "sft/tau1.0-m1-seed0", "--out", str(out)])
    s = json.loads(out.read_text())
    assert {"unsafe_rate", "safety_score", "lexical_unsafe_rate", "distinct_1", "distinct_2",
            "mean_len", "ppl", "method", "tau", "m", "seed"} <= set(s)
    assert s["unsafe_rate"] == 0.5 and s["method"] == "sft" and math.isfinite(s["ppl"])
