"""The demo corpus: deterministic, the promised shape, and a planted safe head."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from isaac import ingest
from isaac.demo import FAMILIES, generate, main
from isaac.ingest import COLUMNS
from isaac.text import normalise


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return generate(seed=0, n_prompts=1500)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    paths = [tmp_path / f"{name}.parquet" for name in ("a", "b", "c")]
    main(["--out", str(paths[0]), "--seed", "3", "--n-prompts", "200"])
    ingest.main(["--format", "demo", "--demo-json", '{"seed": 3, "n_prompts": 200}',
                 "--out", str(paths[1])])
    main(["--out", str(paths[2]), "--seed", "4", "--n-prompts", "200"])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_shape_and_contract(corpus):
    assert list(corpus.columns) == COLUMNS
    assert corpus["id"].is_unique
    assert 2000 <= len(corpus) <= 5000
    assert corpus["group"].nunique() == 1500
    assert (corpus.groupby("group").size() > 1).sum() > 300  # many prompts have several responses
    assert set(corpus["category"]) == set(FAMILIES)
    assert set(corpus["label"]) == {"safe", "unsafe"}
    assert 0.15 <= (corpus["label"] == "unsafe").mean() <= 0.35


def test_splits_are_assigned_per_prompt(corpus):
    assert corpus.groupby("group")["split"].nunique().max() == 1
    share = corpus.drop_duplicates("group")["split"].value_counts(normalize=True)
    assert share["test"] == pytest.approx(0.15, abs=0.01)
    assert share["val"] == pytest.approx(0.05, abs=0.01)


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
