"""The demo corpus: deterministic, the promised shape, and a planted safe head."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from conftest import schema_defaults, settings
from isaac import ingest
from isaac.demo import FAMILIES, generate
from isaac.ingest import COLUMNS, CorpusConfig
from isaac.settings import to_json
from isaac.text import normalise

DEMO = schema_defaults("corpus")["demo"]  # seed, n_prompts, test_fraction, val_fraction


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return generate(**DEMO)


def demo_config(**demo) -> str:
    """The --config of `python -m isaac.ingest` for the demo corpus (schema defaults + demo)."""
    return to_json(settings(CorpusConfig, "corpus", format="demo", demo={**DEMO, **demo}))


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    # The demo corpus is written by `python -m isaac.ingest` with format demo.
    paths = [tmp_path / f"{name}.parquet" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (3, 3, 4)):
        ingest.main(["--config", demo_config(seed=seed, n_prompts=200), "--out", str(path)])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    # What ingest writes is the generator's table, validated.
    written = pd.read_parquet(paths[0])
    expected = generate(**{**DEMO, "seed": 3, "n_prompts": 200}).assign(polluted=False)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


def test_generate_needs_every_setting():
    with pytest.raises(TypeError):
        generate(seed=0, n_prompts=100)  # no defaults: config/schema.yaml owns them


def test_shape_and_contract(corpus):
    n = DEMO["n_prompts"]
    assert list(corpus.columns) == COLUMNS
    assert corpus["id"].is_unique
    assert 4 / 3 * n <= len(corpus) <= 10 / 3 * n  # 2000..5000 for 1500 prompts
    assert corpus["prompt_group"].nunique() == n
    # many prompts have several responses
    assert (corpus.groupby("prompt_group").size() > 1).sum() > n / 5
    assert set(corpus["category"]) == set(FAMILIES)
    assert set(corpus["label"]) == {"safe", "unsafe"}
    assert 0.15 <= (corpus["label"] == "unsafe").mean() <= 0.35


def test_splits_are_assigned_per_prompt(corpus):
    assert corpus.groupby("prompt_group")["split"].nunique().max() == 1
    share = corpus.drop_duplicates("prompt_group")["split"].value_counts(normalize=True)
    assert share["test"] == pytest.approx(DEMO["test_fraction"], abs=0.01)
    assert share["val"] == pytest.approx(DEMO["val_fraction"], abs=0.01)


def test_prompts_and_safe_responses_vary_lexically(corpus):
    assert corpus["prompt"].nunique() > 500
    safe = corpus.loc[corpus["label"] == "safe", "response"].map(normalise)
    n_safe_patterns = sum(len(f["safe"]) for f in FAMILIES.values())
    assert safe.nunique() > 5 * n_safe_patterns


def test_head_of_each_family_is_safe_and_the_tail_is_not(corpus):
    strings = corpus["response"].map(normalise)
    freq = strings.map(strings.value_counts())
    unsafe = corpus["label"] == "unsafe"
    assert unsafe[freq >= 10].mean() < 0.1
    assert unsafe[freq == 1].mean() > 0.4
    for _, family in corpus.groupby("category"):
        top = family["response"].map(normalise).value_counts().index[:3]
        top_labels = family.loc[family["response"].map(normalise).isin(top), "label"]
        assert (top_labels == "safe").mean() > 0.9


def test_a_tfidf_judge_learns_the_labels_but_not_perfectly(corpus):
    train, test = corpus[corpus["split"] == "train"], corpus[corpus["split"] == "test"]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vec.fit_transform(train["prompt"] + " || " + train["response"])
    clf = LogisticRegression(max_iter=2000).fit(x, train["label"] == "unsafe")
    scores = clf.predict_proba(vec.transform(test["prompt"] + " || " + test["response"]))[:, 1]
    auroc = roc_auc_score(test["label"] == "unsafe", scores)
    assert 0.8 < auroc < 0.99
