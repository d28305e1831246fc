"""Witten-Bell probabilities are proper distributions; leave-one-out equals retraining without."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac.io import InputError
from isaac.likelihood import (
    EOS,
    UNK,
    LikelihoodConfig,
    WittenBellLM,
    likelihood_table,
    loo_loglik,
    main,
)
from isaac.settings import to_json

SENTENCES = [
    ["i", "am", "fine"],
    ["i", "am", "fine"],
    ["i", "am", "sad"],
    ["you", "are", "fine"],
    ["go", "away"],
    ["i", "am"],
    [],
]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "context",
    [
        (),
        ("i",),
        ("i", "am"),
        ("<s>", "<s>"),
        ("never", "seen"),
        ("am", "never"),
        ("fine",),
        ("x", "y", "z", "i", "am"),
    ],
)
def test_probabilities_sum_to_one_over_vocab_eos_unk(order, context):
    lm = WittenBellLM(SENTENCES, order)
    outcomes = lm.outcomes()
    assert len(outcomes) == len(lm.vocab) + 2 and outcomes[-2:] == [EOS, UNK]
    probs = [lm.prob(w, context) for w in outcomes]
    assert min(probs) > 0
    assert math.isclose(sum(probs), 1.0, rel_tol=0, abs_tol=1e-12)


def test_hand_computed_unigram_and_bigram():
    lm = WittenBellLM([["a", "b"], ["a"]], order=2)
    # Unigram: c(a)=2, c(b)=1, c(</s>)=2, total 5, T=3 types; uniform over {a, b, </s>, <unk>}.
    assert math.isclose(lm.prob("a"), (2 + 3 * 0.25) / (5 + 3))
    assert math.isclose(lm.prob("zzz"), 3 * 0.25 / 8)  # unknown word = <unk>
    # Bigram after "a": c(a b)=1, c(a </s>)=1, c(a)=2, T(a)=2.
    p_b = (1 + 3 * 0.25) / 8
    assert math.isclose(lm.prob("b", ["a"]), (1 + 2 * p_b) / (2 + 2))
    # Unseen history backs off to the unigram distribution.
    assert math.isclose(lm.prob("b", ["zzz"]), p_b)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_leave_one_out_equals_a_model_trained_without_the_response(order):
    rng = random.Random(order)
    sentences = [[rng.choice("abcdefgh") for _ in range(rng.randint(0, 7))] for _ in range(50)]
    sentences += [
        ["only", "here", "once"],
        ["a", "b"],
        ["a", "b"],
    ]  # unique words, a duplicate pair
    loo = loo_loglik(sentences, order)
    for i, sentence in enumerate(sentences):
        held_out = WittenBellLM(sentences[:i] + sentences[i + 1 :], order)
        assert math.isclose(loo[i], held_out.mean_loglik(sentence), rel_tol=1e-12), i


def test_a_response_with_unique_ngrams_scores_as_unseen_text():
    others = [["i", "am", "fine"], ["you", "are", "fine"], ["i", "am"]]
    unique = ["purple", "elephants", "dance"]
    loo = loo_loglik(others + [unique], order=3)
    without = WittenBellLM(others, 3)
    assert math.isclose(loo[-1], without.mean_loglik(unique), rel_tol=1e-12)
    # Its words are out of vocabulary for that model: each is <unk>.
    assert math.isclose(loo[-1], without.mean_loglik(["q1", "q2", "q3"]), rel_tol=1e-12)


def test_duplicate_pair_supports_itself_but_not_a_singleton():
    corpus = [["hello", "there"], ["hello", "there"], ["good", "bye"]]
    loo = loo_loglik(corpus, order=2)
    assert loo[0] == loo[1]
    assert loo[0] > loo[2]  # the duplicate's copy is in the LOO model, the singleton's is not
    full = WittenBellLM(corpus, 2).mean_loglik(["hello", "there"])
    assert loo[0] < full  # leave-one-out removes the response's own evidence


def test_single_response_corpus_uses_the_uniform_fallback():
    assert np.allclose(loo_loglik([["a", "b"]], 3), math.log(0.5))


def toy_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    corpus = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "split": ["train", "train", "test", "train"],
            "response": ["Hi  there", "hi there", "hi there", "Bye"],
        }
    )
    tokens = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "response_tokens": [["hi", "there"], ["hi", "there"], ["hi", "there"], ["bye"]],
        }
    )
    return corpus, tokens


def test_table_counts_tokens_and_normalised_response_frequency(tmp_path):
    corpus, tokens = toy_tables()
    table = likelihood_table(corpus, tokens, order=2)
    assert table["id"].tolist() == ["a", "b", "d"]
    assert table["n_tokens"].tolist() == [2, 2, 1]
    assert table["response_freq"].tolist() == [2, 2, 1]
    assert np.all(table["loglik"] < 0)
    corpus.to_parquet(tmp_path / "corpus.parquet")
    tokens.to_parquet(tmp_path / "tokens.parquet")
    main(
        [
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--tokens",
            str(tmp_path / "tokens.parquet"),
            "--config",
            to_json(settings(LikelihoodConfig, "likelihood", order=2)),
            "--out",
            str(tmp_path / "lik.parquet"),
        ]
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "lik.parquet"), table, check_dtype=False
    )


def test_cli_uses_the_configured_order(tmp_path):
    corpus, tokens = toy_tables()
    corpus.to_parquet(tmp_path / "corpus.parquet")
    tokens.to_parquet(tmp_path / "tokens.parquet")
    config = settings(LikelihoodConfig, "likelihood")  # the schema's default order
    main(
        [
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--tokens",
            str(tmp_path / "tokens.parquet"),
            "--config",
            to_json(config),
            "--out",
            str(tmp_path / "lik.parquet"),
        ]
    )
    expected = likelihood_table(corpus, tokens, config.order)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "lik.parquet"), expected, check_dtype=False
    )


@pytest.mark.parametrize(
    "config,fragment",
    [
        pytest.param({}, "missing key(s) order", id="missing"),
        pytest.param(
            {**schema_defaults("likelihood"), "smoothing": "kn"},
            "unknown key(s) smoothing",
            id="unknown",
        ),
        pytest.param({"order": "3"}, "--config.order", id="wrong-type"),
    ],
)
def test_cli_config_must_hold_exactly_the_likelihood_keys(tmp_path, config, fragment):
    corpus, tokens = toy_tables()
    corpus.to_parquet(tmp_path / "corpus.parquet")
    tokens.to_parquet(tmp_path / "tokens.parquet")
    out = tmp_path / "lik.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isaac.likelihood",
            "--corpus",
            str(tmp_path / "corpus.parquet"),
            "--tokens",
            str(tmp_path / "tokens.parquet"),
            "--config",
            json.dumps(config),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and fragment in proc.stderr, proc.stderr
    assert not out.exists()


def test_order_below_one_is_rejected():
    with pytest.raises(InputError):
        loo_loglik([["a"]], 0)
    with pytest.raises(InputError):
        WittenBellLM([["a"]], 0)
