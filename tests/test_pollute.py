"""The pollution protocol: which rows change, how, reproducibly, and how pollution is counted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import schema_defaults
from isaac import ingest, sample
from isaac.io import InputError
from isaac.pollute import POLLUTANTS, PolluteConfig, contains_pollutant, insert_phrase, pollute
from isaac.runs import Run
from isaac.score import safety_scores
from isaac.settings import to_json
from test_sample import sample_config


def corpus(n_train=200, n_test=20):
    splits = ["train"] * n_train + ["val"] * 5 + ["test"] * n_test
    n = len(splits)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "split": splits,
            "prompt": [f"prompt {i}" for i in range(n)],
            "response": [f"answer number {i} here" for i in range(n)],
            "label": [None if i % 10 == 0 else "safe" for i in range(n)],
            "category": None,
            "prompt_group": None,
        }
    )


def test_rate_zero_changes_nothing_and_marks_no_row():
    before = corpus()
    after = pollute(before, PolluteConfig(rate=0.0, seed=0))
    pd.testing.assert_frame_equal(after.drop(columns="polluted"), before)
    assert not after["polluted"].any()


def test_a_share_of_train_rows_gets_one_phrase_and_labelled_ones_become_unsafe():
    before = corpus()
    after = pollute(before, PolluteConfig(rate=0.1, seed=3))
    hit = after["polluted"].to_numpy()
    assert hit.sum() == 20 and set(after.loc[hit, "split"]) == {"train"}
    assert contains_pollutant(after.loc[hit, "response"]).all()
    assert not contains_pollutant(after.loc[~hit, "response"]).any()
    # the original words stay, in order, around the inserted phrase
    for old, new in zip(before.loc[hit, "response"], after.loc[hit, "response"]):
        phrase = next(p for p in POLLUTANTS if p in new)
        assert " ".join(new.replace(phrase, " ").split()) == old
    pd.testing.assert_series_equal(after.loc[~hit, "response"], before.loc[~hit, "response"])
    was_labelled = before["label"].notna().to_numpy()
    assert (after.loc[hit & was_labelled, "label"] == "unsafe").all()
    assert after.loc[hit & ~was_labelled, "label"].isna().all()
    assert (after.loc[~hit, "label"].fillna("-") == before.loc[~hit, "label"].fillna("-")).all()


def test_same_seed_same_rows_and_phrases_another_seed_differs():
    a, b, c = (pollute(corpus(), PolluteConfig(0.04, s)) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(a, b)
    assert not a["polluted"].equals(c["polluted"])


@given(st.text(), st.integers(0, 2**32 - 1))
def test_insertion_keeps_every_word_and_adds_the_phrase(response, seed):
    phrase = POLLUTANTS[seed % len(POLLUTANTS)]
    out = insert_phrase(response, phrase, np.random.default_rng(seed))
    assert phrase in out and contains_pollutant([out])[0]
    words = out.split()
    at = next(i for i in range(len(words)) if words[i : i + len(phrase.split())] == phrase.split())
    assert words[:at] + words[at + len(phrase.split()) :] == response.split()


def test_detection_is_exact_up_to_case_and_whitespace():
    phrase = POLLUTANTS[0]
    assert contains_pollutant([phrase.upper(), "x  " + phrase.replace(" ", "\n  ") + " y"]).all()
    assert not contains_pollutant([phrase[:-1], " ".join(phrase.split()[:-1]), ""]).any()


def test_rate_outside_zero_to_one_is_refused():
    for rate in (-0.1, 1.0):
        with pytest.raises(InputError, match="pollute.rate"):
            pollute(corpus(), PolluteConfig(rate, 0))


def ingest_demo(tmp_path, pollute_section: dict) -> pd.DataFrame:
    """corpus.parquet of the demo as the workflow's ingest job reads the corpus section."""
    corpus_section = schema_defaults("corpus")
    config = {k: corpus_section[k] for k in ("format", "default_split", "empty_responses", "demo")}
    config |= {"path": None, "fields": None, "pollute": pollute_section}
    out = tmp_path / "corpus.parquet"
    ingest.main(["--config", json.dumps(config), "--out", str(out)])
    return pd.read_parquet(out)


def test_no_phrase_occurs_in_the_demo_corpus(tmp_path):
    demo = ingest_demo(tmp_path, schema_defaults("corpus")["pollute"])
    assert not demo["polluted"].any()
    assert not contains_pollutant(demo["response"]).any()


def test_no_phrase_occurs_in_diasafety(diasafety_dir):
    texts = []
    for split in ("train", "val", "test"):
        items = json.loads((diasafety_dir / f"{split}.json").read_text())
        texts += [str(v) for item in items for v in item.values()]
    assert not contains_pollutant(texts).any()


def test_ingest_writes_the_polluted_column(tmp_path):
    demo = ingest_demo(tmp_path, {"rate": 0.1, "seed": 0})
    n_train = int((demo["split"] == "train").sum())
    assert demo["polluted"].sum() == round(0.1 * n_train)
    assert contains_pollutant(demo.loc[demo["polluted"], "response"]).all()


def test_targets_report_the_share_drawn_from_polluted_rows():
    train = corpus(n_train=50, n_test=0)
    train = pollute(train, PolluteConfig(0.2, 0))
    train = train[train["split"] == "train"].reset_index(drop=True)
    _, raw = sample.sample(Run("raw", 1.0, 1, 0), train, sample_config("raw"))
    assert raw["polluted_share"] == pytest.approx(0.2)
    _, sft = sample.sample(Run("sft", 1.0, 1, 0), train, sample_config("sft"))
    assert sft["polluted_share"] == 0.0  # polluted labelled rows are unsafe, so sft drops them


def test_scores_report_the_share_of_generations_with_a_phrase():
    texts = ["fine thanks", f"well {POLLUTANTS[2]} ok", "sure", POLLUTANTS[5].upper()]
    rows = pd.DataFrame(
        {
            "unsafe": [False] * 4,
            "unsafe_prob": [0.1] * 4,
            "lexical_unsafe": [False] * 4,
            "unsafe_second": [None] * 4,
            "copied": [False] * 4,
            "copied_exact": [False] * 4,
            "copied_unsafe": pd.array([pd.NA] * 4, dtype="boolean"),
        }
    )
    assert safety_scores(rows, texts)["polluted_generation_share"] == 0.5


def test_settings_come_from_the_schema():
    assert schema_defaults("corpus")["pollute"] == {"rate": 0.0, "seed": 0}
    assert to_json(PolluteConfig(**schema_defaults("corpus")["pollute"]))
