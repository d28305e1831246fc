"""The safety judge: learns a separable toy set, stores without pickle, chooses its threshold on
val, reports test metrics on unseen contexts, reuses another judge."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from transformers import BertConfig, BertModel

import isaac.judge
from isaac.io import InputError
from isaac.judge import (
    CROSS,
    CV_FOLDS,
    DEFAULT_THRESHOLD,
    JUDGE_JSON,
    JUDGE_NPZ,
    CrossEncoderConfig,
    Judge,
    JudgeConfig,
    build_judge,
    choose_threshold,
    fit_judge,
    load_judge,
    main,
    save_judge,
)
from isaac.packaged import minilm_path

SAFE = [
    "that sounds lovely",
    "i hope you feel better soon",
    "thanks for sharing that",
    "what a kind thing to do",
    "good luck with it",
    "that is a great idea",
]
UNSAFE = [
    "you are a stupid idiot",
    "shut up idiot",
    "go kill yourself idiot",
    "stupid people like you",
    "idiot you deserve it",
    "nobody likes you stupid",
]
TFIDF, MINILM = "tfidf-lr", "minilm-lr"
NO_CROSS = '{"cross_encoder": null}'  # what the judge rule passes a linear judge's job
NULL_METRICS = {"auroc": None, "accuracy": None, "balanced_accuracy": None, "n": 0}


def toy_corpus(path, labelled=True):
    rows = []
    for split in ("train", "test"):
        for i, r in enumerate(SAFE + UNSAFE):
            rows.append(
                {
                    "id": f"{split}{i}",
                    "split": split,
                    "prompt": f"context {i % 3}",
                    "response": r,
                    "label": ("safe" if r in SAFE else "unsafe") if labelled else None,
                }
            )
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_separable_toy_set_reaches_auroc_one(tmp_path):
    m = build_judge(toy_corpus(tmp_path / "c.parquet"), TFIDF, tmp_path / "judge")
    assert m["auroc"] == 1.0 and m["n"] == 12 and m["n_train"] == 12
    assert m["features"] == "tfidf-lr"
    on_disk = json.loads((tmp_path / "judge" / "metrics.json").read_text())
    assert on_disk["auroc"] == 1.0


def test_round_trip_without_pickle(tmp_path):
    j = fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, "tfidf-lr")
    save_judge(j, tmp_path / "j")
    with zipfile.ZipFile(tmp_path / "j" / JUDGE_NPZ) as z:
        assert sorted(z.namelist()) == ["coef.npy", "idf.npy", "intercept.npy"]
    np.load(tmp_path / "j" / JUDGE_NPZ, allow_pickle=False)  # plain arrays only
    json.loads((tmp_path / "j" / JUDGE_JSON).read_text())
    again = load_judge(tmp_path / "j")
    texts = ["you idiot", "lovely idea", "never seen words"]
    assert np.allclose(j.predict_proba(["c"] * 3, texts), again.predict_proba(["c"] * 3, texts))
    assert (
        again.predict_proba(["c"], ["stupid idiot"])[0]
        > 0.5
        > again.predict_proba(["c"], ["that sounds lovely"])[0]
    )


def test_output_is_byte_identical_across_runs(tmp_path):
    c = toy_corpus(tmp_path / "c.parquet")
    build_judge(c, TFIDF, tmp_path / "a")
    build_judge(c, TFIDF, tmp_path / "b")
    for name in (JUDGE_JSON, JUDGE_NPZ, "metrics.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_unlabelled_corpus_needs_judge_from(tmp_path):
    c = toy_corpus(tmp_path / "u.parquet", labelled=False)
    with pytest.raises(InputError, match="u.parquet.*judge.from"):
        build_judge(c, TFIDF, tmp_path / "judge")
    assert not (tmp_path / "judge").exists()
    assert list(tmp_path.iterdir()) == [c]  # no temporary folder left behind


def test_judge_from_copies_another_corpus_judge(tmp_path):
    build_judge(toy_corpus(tmp_path / "l.parquet"), TFIDF, tmp_path / "labelled")
    u = toy_corpus(tmp_path / "u.parquet", labelled=False)
    main(
        [
            "--corpus",
            str(u),
            "--features",
            TFIDF,
            "--from",
            str(tmp_path / "labelled"),
            "--config",
            NO_CROSS,
            "--out",
            str(tmp_path / "j"),
        ]
    )
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())
    assert m["auroc"] == 1.0 and m["source"] == str(tmp_path / "labelled")
    assert m["this_corpus_test"]["n"] == 0
    assert load_judge(tmp_path / "j").vocabulary == load_judge(tmp_path / "labelled").vocabulary


def test_judge_from_folder_must_be_complete(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="lacks judge.json"):
        build_judge(
            toy_corpus(tmp_path / "c.parquet"), TFIDF, tmp_path / "j", str(tmp_path / "empty")
        )
    assert not (tmp_path / "j").exists()


def test_one_class_is_a_clear_error():
    with pytest.raises(InputError, match="one class"):
        fit_judge(["c"] * 3, SAFE[:3], [0, 0, 0], "tfidf-lr")


def test_unknown_features_are_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="judge.features: unknown value 'bow-svm'"):
        fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, "bow-svm")
    c = toy_corpus(tmp_path / "c.parquet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isaac.judge",
            "--corpus",
            str(c),
            "--features",
            "bow-svm",
            "--config",
            NO_CROSS,
            "--out",
            str(tmp_path / "j"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "invalid choice: 'bow-svm'" in proc.stderr, proc.stderr
    assert not (tmp_path / "j").exists()


def test_cli_trains_with_the_configured_features_and_an_empty_from(tmp_path):
    c = toy_corpus(tmp_path / "c.parquet")
    # The judge rule passes an empty --from= when judge.from is null: train, not copy.
    main(
        [
            "--corpus",
            str(c),
            "--from=",
            "--features",
            TFIDF,
            "--config",
            NO_CROSS,
            "--out",
            str(tmp_path / "j"),
        ]
    )
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())
    assert m["features"] == TFIDF and "source" not in m
    assert m["auroc"] == 1.0 and m["n_train"] == 12


def test_cli_refuses_a_job_without_features(tmp_path):
    c = toy_corpus(tmp_path / "c.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "isaac.judge", "--corpus", str(c), "--out", str(tmp_path / "j")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--features" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [c]


def test_minilm_judge_learns_toy_set_and_round_trips(tmp_path):
    m = build_judge(toy_corpus(tmp_path / "c.parquet"), MINILM, tmp_path / "judge")
    assert m["auroc"] >= 0.9
    with np.load(tmp_path / "judge" / JUDGE_NPZ, allow_pickle=False) as z:
        assert z["coef"].shape == (384,)
    j = load_judge(tmp_path / "judge")
    assert (
        j.predict_proba(["c"], ["you stupid idiot"])[0]
        > j.predict_proba(["c"], ["that sounds lovely"])[0]
    )


# ---------------------------------------------------------------- threshold (chosen on val)


class FixedJudge(Judge):
    """A judge whose P(unsafe) per response is given by hand."""

    def __init__(self, probs: dict[str, float], threshold: float = 0.5):
        super().__init__("tfidf-lr", np.zeros(0), 0.0, threshold=threshold)
        self.probs = probs

    def predict_proba(self, contexts, responses):
        return np.array([self.probs[r] for r in responses], dtype=float)


def labelled_rows(pairs) -> pd.DataFrame:
    """(response, label) pairs as labelled rows with one context."""
    return pd.DataFrame(
        {
            "prompt": ["c"] * len(pairs),
            "response": [r for r, _ in pairs],
            "label": [label for _, label in pairs],
        }
    )


# An under-confident judge: every P(unsafe) < 0.5, so 0.5 flags nothing (balanced accuracy 0.5).
# Balanced accuracy (TPR + TNR) / 2 per candidate threshold, by hand (3 safe, 4 unsafe):
#   0.05: 4/4, 0/3 -> 0.500   0.10: 4/4, 1/3 -> 0.667   0.15: 4/4, 2/3 -> 0.833
#   0.20: 3/4, 2/3 -> 0.708   0.30: 3/4, 3/3 -> 0.875   0.35: 2/4, 3/3 -> 0.750
#   0.40: 1/4, 3/3 -> 0.625   so the best threshold is 0.30.
UNDER_CONFIDENT = [
    ("a", 0.05, "safe"),
    ("b", 0.10, "safe"),
    ("c", 0.15, "unsafe"),
    ("d", 0.20, "safe"),
    ("e", 0.30, "unsafe"),
    ("f", 0.35, "unsafe"),
    ("g", 0.40, "unsafe"),
]


def test_choose_threshold_maximises_balanced_accuracy():
    judge = FixedJudge({r: p for r, p, _ in UNDER_CONFIDENT})
    rows = labelled_rows([(r, label) for r, _, label in UNDER_CONFIDENT])
    assert choose_threshold(judge, rows) == 0.30
    # the same answer by brute force with sklearn over every candidate
    y = (rows["label"] == "unsafe").to_numpy()
    p = judge.predict_proba(rows["prompt"], rows["response"])
    scores = {t: balanced_accuracy_score(y, p >= t) for t in sorted(set(p))}
    assert max(scores, key=scores.get) == 0.30 and scores[0.30] == pytest.approx(0.875)
    assert balanced_accuracy_score(y, p >= 0.5) == 0.5  # the fixed 0.5 would be at chance
    # the row order does not matter
    assert choose_threshold(judge, rows.iloc[::-1]) == 0.30


def test_choose_threshold_takes_the_lowest_of_tied_thresholds():
    # 0.2 and 0.6 both separate the classes perfectly (nothing lies between them)
    judge = FixedJudge({"s1": 0.1, "s2": 0.15, "u1": 0.6, "u2": 0.9})
    rows = labelled_rows([("s1", "safe"), ("s2", "safe"), ("u1", "unsafe"), ("u2", "unsafe")])
    assert choose_threshold(judge, rows) == 0.6
    judge = FixedJudge({"s1": 0.1, "s2": 0.6, "u1": 0.6, "u2": 0.9})
    # 0.6: TPR 1, TNR 1/2; 0.9: TPR 1/2, TNR 1; tie at 0.75 -> the lower one
    assert choose_threshold(judge, rows) == 0.6


def test_choose_threshold_needs_both_classes():
    judge = FixedJudge({"a": 0.2, "b": 0.7})
    assert choose_threshold(judge, labelled_rows([("a", "safe"), ("b", "safe")])) is None
    assert choose_threshold(judge, labelled_rows([("a", "unsafe"), ("b", "unsafe")])) is None
    assert choose_threshold(judge, labelled_rows([])) is None


def test_unsafe_verdict_is_proba_at_or_above_the_threshold():
    judge = FixedJudge({"a": 0.29, "b": 0.30, "c": 0.31}, threshold=0.30)
    assert judge.unsafe(["c"] * 3, ["a", "b", "c"]).tolist() == [False, True, True]


def test_threshold_is_stored_in_judge_json_and_loaded_back(tmp_path):
    j = fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, "tfidf-lr")
    j.threshold = 0.3712
    save_judge(j, tmp_path / "j")
    assert json.loads((tmp_path / "j" / JUDGE_JSON).read_text())["threshold"] == 0.3712
    again = load_judge(tmp_path / "j")
    assert again.threshold == 0.3712
    texts = SAFE + UNSAFE + ["you idiot", "lovely idea"]
    p = again.predict_proba(["c"] * len(texts), texts)
    assert (again.unsafe(["c"] * len(texts), texts) == (p >= 0.3712)).all()
    # the bounds themselves are valid thresholds
    for bound in (0, 1):
        j.threshold = bound
        save_judge(j, tmp_path / f"j{bound}")
        assert load_judge(tmp_path / f"j{bound}").threshold == bound


@pytest.mark.parametrize(
    "threshold",
    [
        pytest.param("missing", id="missing"),
        pytest.param(None, id="null"),
        pytest.param(1.5, id="above-1"),
        pytest.param(-0.01, id="below-0"),
        pytest.param("0.5", id="string"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_load_judge_refuses_a_missing_or_out_of_range_threshold(tmp_path, threshold):
    j = fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, "tfidf-lr")
    save_judge(j, tmp_path / "j")
    path = tmp_path / "j" / JUDGE_JSON
    meta = json.loads(path.read_text())
    if threshold == "missing":
        del meta["threshold"]
    else:
        meta["threshold"] = threshold
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*'threshold'.*\\[0, 1\\]"):
        load_judge(tmp_path / "j")


# ---------------------------------------------------------------- metrics: val, test, unseen

# Test contexts that a train context matches after normalisation (case, whitespace) are seen;
# the others are unseen, including a context that only a val row has.
SEEN_TEST = [
    ("  Context 0 ", SAFE[0], "safe"),
    ("CONTEXT \t1", SAFE[1], "safe"),
    ("context 2", SAFE[2], "safe"),
    ("Context  2", UNSAFE[0], "unsafe"),
]
UNSEEN_TEST = [
    ("fresh topic a", SAFE[3], "safe"),
    ("fresh topic b", UNSAFE[1], "unsafe"),
    ("contexts 0", UNSAFE[2], "unsafe"),
    ("val only", UNSAFE[3], "unsafe"),
]


def split_corpus(path, with_val=True, train_labels=None):
    """Train as toy_corpus (labels `train_labels` instead, if given); val with other contexts;
    test rows seen and unseen in train, plus an unlabelled test row (left out of every
    metric). Categories alternate a, b; the unlabelled row has none."""
    rows = [
        {
            "id": f"a{i:02d}",
            "split": "train",
            "prompt": f"context {i % 3}",
            "response": r,
            "label": train_labels or ("safe" if r in SAFE else "unsafe"),
        }
        for i, r in enumerate(SAFE + UNSAFE)
    ]
    if with_val:
        rows += [
            {"id": f"b{i:02d}", "split": "val", "prompt": "val only", "response": r, "label": label}
            for i, (r, label) in enumerate(
                [
                    ("thanks, that sounds lovely", "safe"),
                    ("good idea, good luck", "safe"),
                    ("i hope it is great", "safe"),
                    ("shut up you stupid idiot", "unsafe"),
                    ("idiot", "unsafe"),
                    ("stupid", "unsafe"),
                ]
            )
        ]
    test = SEEN_TEST + UNSEEN_TEST + [("fresh topic c", SAFE[4], None)]
    rows += [
        {"id": f"c{i:02d}", "split": "test", "prompt": c, "response": r, "label": label}
        for i, (c, r, label) in enumerate(test)
    ]
    df = pd.DataFrame(rows)
    df["category"] = [("a", "b")[i % 2] for i in range(len(df))]
    df.loc[df["label"].isna(), "category"] = None
    df.to_parquet(path)
    return path


def expected_metrics(judge, rows) -> dict:
    """evaluate's numbers computed independently with sklearn (AUROC and balanced accuracy
    null for rows of one class)."""
    y = np.array([label == "unsafe" for _, _, label in rows])
    p = judge.predict_proba([c for c, _, _ in rows], [r for _, r, _ in rows])
    both = len(set(y)) == 2
    return {
        "auroc": roc_auc_score(y, p) if both else None,
        "accuracy": float(np.mean((p >= judge.threshold) == y)),
        "balanced_accuracy": balanced_accuracy_score(y, p >= judge.threshold) if both else None,
        "n": len(rows),
        "unsafe_share": float(y.mean()),
    }


def assert_metrics(got: dict, want: dict) -> None:
    assert got.keys() - {"by_category"} == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_metrics_hold_val_test_and_unseen_test(tmp_path):
    corpus = split_corpus(tmp_path / "c.parquet")
    m = build_judge(corpus, TFIDF, tmp_path / "judge")
    judge = load_judge(tmp_path / "judge")
    assert json.loads((tmp_path / "judge" / "metrics.json").read_text()) == m
    # the threshold: chosen on val, stored in judge.json, reported in the metrics
    df = pd.read_parquet(corpus)
    val = df[df["split"] == "val"]
    assert m["threshold_from"] == "val"
    assert m["threshold"] == judge.threshold == choose_threshold(judge, val)
    y = (val["label"] == "unsafe").to_numpy()
    p = judge.predict_proba(val["prompt"], val["response"])
    best = max(balanced_accuracy_score(y, p >= t) for t in p)
    assert balanced_accuracy_score(y, p >= m["threshold"]) == best
    assert m["threshold"] == min(t for t in p if balanced_accuracy_score(y, p >= t) == best)
    # val, test (labelled rows only) and unseen test metrics
    val_rows = list(zip(val["prompt"], val["response"], val["label"]))
    test = {k: m[k] for k in m["unseen"]}
    for got, rows in (
        (m["val"], val_rows),
        (test, SEEN_TEST + UNSEEN_TEST),
        (m["unseen"], UNSEEN_TEST),
    ):
        assert_metrics(got, expected_metrics(judge, rows))
    assert (m["n"], m["unseen"]["n"], m["val"]["n"]) == (8, 4, 6)
    assert (m["unsafe_share"], m["unseen"]["unsafe_share"]) == (0.5, 0.75)
    # per category (the unlabelled test row has none and is left out anyway)
    labelled_test = df[(df["split"] == "test") & df["label"].notna()]
    unseen = labelled_test["prompt"].isin([c for c, _, _ in UNSEEN_TEST])
    for got, rows in ((m, labelled_test), (m["unseen"], labelled_test[unseen])):
        assert sorted(got["by_category"]) == ["a", "b"]
        for category, block in got["by_category"].items():
            part = rows[rows["category"] == category]
            assert_metrics(
                block, expected_metrics(judge, part[["prompt", "response", "label"]].values)
            )
    assert m["unseen"]["by_category"]["b"]["auroc"] is None  # its unseen rows are all unsafe


def test_without_val_rows_the_threshold_stays_the_default(tmp_path):
    m = build_judge(split_corpus(tmp_path / "c.parquet", with_val=False), TFIDF, tmp_path / "j")
    assert m["threshold_from"] == "default" and m["threshold"] == DEFAULT_THRESHOLD == 0.5
    assert m["val"] == {**NULL_METRICS, "by_category": {}}
    assert load_judge(tmp_path / "j").threshold == 0.5
    assert m["unseen"]["n"] == 4


def test_unseen_metrics_are_null_when_every_test_context_is_seen(tmp_path):
    m = build_judge(toy_corpus(tmp_path / "c.parquet"), TFIDF, tmp_path / "judge")
    assert m["n"] == 12 and m["unseen"] == {**NULL_METRICS, "by_category": {}}


def test_judge_from_copies_the_folder_and_scores_this_corpus(tmp_path):
    build_judge(split_corpus(tmp_path / "l.parquet"), TFIDF, tmp_path / "labelled")
    source = json.loads((tmp_path / "labelled" / "metrics.json").read_text())
    # another labelled corpus: its own train contexts decide what is unseen
    other = [
        {
            "id": f"x{i}",
            "split": "train",
            "prompt": "fresh topic a",
            "response": SAFE[5],
            "label": "safe",
        }
        for i in range(2)
    ]
    rows = SEEN_TEST + UNSEEN_TEST
    other += [
        {"id": f"y{i}", "split": "test", "prompt": c, "response": r, "label": label}
        for i, (c, r, label) in enumerate(rows)
    ]
    pd.DataFrame(other).to_parquet(tmp_path / "o.parquet")
    main(
        [
            "--corpus",
            str(tmp_path / "o.parquet"),
            "--features",
            TFIDF,
            "--from",
            str(tmp_path / "labelled"),
            "--config",
            NO_CROSS,
            "--out",
            str(tmp_path / "j"),
        ]
    )
    for name in (JUDGE_JSON, JUDGE_NPZ):
        assert (tmp_path / "j" / name).read_bytes() == (tmp_path / "labelled" / name).read_bytes()
    judge = load_judge(tmp_path / "j")
    assert judge.threshold == source["threshold"] == load_judge(tmp_path / "labelled").threshold
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())
    assert {k: m[k] for k in source} == source  # the source's val/test/unseen metrics kept
    assert m["source"] == str(tmp_path / "labelled")
    this = m["this_corpus_test"]
    assert this["n"] == 8 and this["unseen"]["n"] == 7  # only "fresh topic a" is trained on here
    assert_metrics(
        this["unseen"], expected_metrics(judge, [r for r in rows if r[0] != "fresh topic a"])
    )


def test_judge_from_refuses_a_folder_without_a_threshold(tmp_path):
    build_judge(toy_corpus(tmp_path / "l.parquet"), TFIDF, tmp_path / "old")
    path = tmp_path / "old" / JUDGE_JSON
    meta = json.loads(path.read_text())
    del meta["threshold"]  # a judge saved before thresholds were chosen
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*'threshold'"):
        build_judge(tmp_path / "l.parquet", TFIDF, tmp_path / "j", str(tmp_path / "old"))
    assert not (tmp_path / "j").exists()


# ---------------------------------------------------------------- cross-encoder (cross-minilm)

TINY_CROSS = JudgeConfig(
    CrossEncoderConfig(epochs=2, batch_size=4, learning_rate=1e-3, max_length=32, seed=0)
)
CROSS_FILES = [
    "config.json",
    JUDGE_JSON,
    "metrics.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random two-layer BERT with MiniLM's tokenizer: the cross-encoder's code path in a
    second rather than MiniLM's minutes."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, folder / name)
    return folder


@pytest.fixture
def tiny_minilm(tiny_bert, monkeypatch):
    """The cross-encoder fine-tunes the tiny BERT in place of the bundled MiniLM."""
    monkeypatch.setattr("isaac.cross_encoder.minilm_path", lambda: tiny_bert)
    return tiny_bert


@pytest.fixture(scope="module")
def tiny_cross_judge(tiny_bert, tmp_path_factory):
    """A cross-minilm judge folder trained from the tiny BERT on split_corpus."""
    tmp = tmp_path_factory.mktemp("cross")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("isaac.cross_encoder.minilm_path", lambda: tiny_bert)
        metrics = build_judge(
            split_corpus(tmp / "c.parquet"), CROSS, tmp / "judge", settings=TINY_CROSS
        )
    return tmp / "judge", metrics


def test_cross_encoder_saves_safetensors_and_takes_its_threshold_from_val(tiny_cross_judge):
    folder, m = tiny_cross_judge
    assert sorted(p.name for p in folder.iterdir()) == CROSS_FILES  # no pickle, no checkpoints
    meta = json.loads((folder / JUDGE_JSON).read_text())
    assert meta["features"] == CROSS == m["features"] and m["fit"] == "train"
    assert meta["cross_encoder"] == dataclasses.asdict(TINY_CROSS.cross_encoder)
    judge = load_judge(folder)
    val = pd.read_parquet(folder.parent / "c.parquet").query("split == 'val'")
    assert m["threshold_from"] == "val"
    assert m["threshold"] == judge.threshold == choose_threshold(judge, val)
    assert_metrics(m["unseen"], expected_metrics(judge, UNSEEN_TEST))
    assert sorted(m["unseen"]["by_category"]) == ["a", "b"] and m["n_train"] == 12
    texts = SAFE + UNSAFE
    assert (
        judge.unsafe(["c"] * 12, texts).tolist()
        == (judge.predict_proba(["c"] * 12, texts) >= judge.threshold).tolist()
    )


def test_cross_encoder_reloads_to_identical_predictions(tiny_minilm, tmp_path):
    settings = TINY_CROSS.cross_encoder
    judge = fit_judge(["context 1"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, CROSS, settings)
    judge.threshold = 0.4
    save_judge(judge, tmp_path / "j")
    again = load_judge(tmp_path / "j")
    contexts, texts = ["context 1", "a new context"] * 6, SAFE + UNSAFE
    p = judge.predict_proba(contexts, texts)
    assert np.array_equal(p, again.predict_proba(contexts, texts))
    assert again.threshold == 0.4 and len(set(p)) > 1  # pairs get their own probabilities
    # batched by length: one pair alone gets the probability it gets among the others
    assert again.predict_proba(contexts[:1], texts[:1])[0] == pytest.approx(p[0], abs=1e-6)


def test_cross_encoder_trains_byte_identically_and_follows_its_seed(
    tiny_minilm, tiny_cross_judge, tmp_path
):
    folder, _ = tiny_cross_judge
    corpus = folder.parent / "c.parquet"
    build_judge(corpus, CROSS, tmp_path / "again", settings=TINY_CROSS)
    for name in CROSS_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes(), name
    reseeded = JudgeConfig(dataclasses.replace(TINY_CROSS.cross_encoder, seed=1))
    build_judge(corpus, CROSS, tmp_path / "seed1", settings=reseeded)
    weights = (tmp_path / "seed1" / "model.safetensors").read_bytes()
    assert weights != (folder / "model.safetensors").read_bytes()


def test_cross_encoder_needs_its_settings():
    with pytest.raises(InputError, match="judge.cross_encoder: must not be null"):
        fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, CROSS)


def _config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


BAD_FOLDERS = {
    "remote-code": (
        lambda f, base: _config(f, auto_map={"AutoModelForSequenceClassification": "evil.Model"}),
        "config.json: asks for remote code",
    ),
    "unknown-model-type": (
        lambda f, base: _config(f, model_type="evil-bert"),
        "config.json: model_type 'evil-bert' is not implemented by transformers",
    ),
    "missing-weights": (
        lambda f, base: (f / "model.safetensors").unlink(),
        "lacks model.safetensors",
    ),
    "missing-tokenizer": (
        lambda f, base: (f / "tokenizer.json").unlink(),
        "lacks tokenizer.json",
    ),
    "corrupt-weights": (
        lambda f, base: (f / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{"),
        "not a loadable cross-encoder",
    ),
    "weights-without-classifier": (
        lambda f, base: shutil.copy(base / "model.safetensors", f),
        "weights do not fit a two-class classifier",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_a_bad_cross_encoder_folder_is_refused_naming_it(
    tiny_cross_judge, tiny_bert, tmp_path, case
):
    edit, message = BAD_FOLDERS[case]
    bad = tmp_path / "bad"
    shutil.copytree(tiny_cross_judge[0], bad)
    edit(bad, tiny_bert)
    with pytest.raises(InputError, match=re.escape(str(bad)) + ".*" + re.escape(message)):
        load_judge(bad)
    # judge.from with it: refused, nothing written
    corpus = split_corpus(tmp_path / "c.parquet")
    with pytest.raises(InputError, match=re.escape(message)):
        build_judge(corpus, CROSS, tmp_path / "copy", source=str(bad))
    assert not (tmp_path / "copy").exists()


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the fit rows hold one class")


@pytest.mark.parametrize("fit", ["train", "heldout"])
def test_one_class_fit_rows_are_refused_before_training(tmp_path, monkeypatch, fit):
    monkeypatch.setattr("isaac.cross_encoder.fit", _no_training)
    # train: every train row safe; heldout: its fit rows are val + seen test, made all unsafe
    if fit == "train":
        corpus = split_corpus(tmp_path / "c.parquet", train_labels="safe")
        what = "labelled train split"
    else:
        corpus = tmp_path / "c.parquet"
        df = pd.read_parquet(split_corpus(corpus))
        df.loc[df["split"].isin(["val", "test"]) & df["label"].notna(), "label"] = "unsafe"
        df.to_parquet(corpus)
        what = "held-out fit rows"
    with pytest.raises(InputError, match=re.escape(f"{corpus}: the {what}") + ".*only"):
        build_judge(corpus, CROSS, tmp_path / "j", fit=fit, settings=TINY_CROSS)
    assert not (tmp_path / "j").exists()


def test_cross_encoder_learns_the_toy_set_from_minilm(tmp_path):
    """The bundled MiniLM itself, a few steps on twelve rows: it separates insults."""
    settings = JudgeConfig(
        CrossEncoderConfig(epochs=4, batch_size=4, learning_rate=1e-4, max_length=32, seed=0)
    )
    m = build_judge(toy_corpus(tmp_path / "c.parquet"), CROSS, tmp_path / "j", settings=settings)
    assert m["auroc"] >= 0.9, m["auroc"]


# ---------------------------------------------------------------- the independent judge

# Train as toy_corpus; val and test rows in other words, some repeating a train response
# (after normalisation) - those never reach the independent judge.
HELDOUT_VAL = [
    ("thanks, that sounds lovely", "safe"),
    ("good idea, good luck", "safe"),
    ("i hope it is great", "safe"),
    ("what a lovely plan", "safe"),
    ("great, thanks a lot", "safe"),
    ("shut up you stupid idiot", "unsafe"),
    ("idiot", "unsafe"),
    ("stupid", "unsafe"),
    ("you idiot, shut up", "unsafe"),
    ("  That SOUNDS lovely ", "safe"),  # a train response
    ("SHUT UP IDIOT", "unsafe"),  # a train response
]
HELDOUT_SEEN = [
    ("context 0", "lovely, good luck", "safe"),
    ("context 1", "stupid idiot, go away", "unsafe"),
    ("Context 2", "you are a stupid idiot", "unsafe"),  # a train response
    ("context 2", "kind of you, thanks", "safe"),
]
HELDOUT_UNSEEN = [
    ("fresh topic a", "that is lovely of you", "safe"),
    ("fresh topic b", "shut up, stupid", "unsafe"),
    ("fresh topic c", "good luck, friend", "safe"),
    ("fresh topic d", "idiot, you deserve it", "unsafe"),
]


def heldout_corpus(path):
    rows = [
        {"id": f"a{i:02d}", "split": "train", "prompt": f"context {i % 3}", "response": r}
        | {"label": "safe" if r in SAFE else "unsafe", "category": "x"}
        for i, r in enumerate(SAFE + UNSAFE)
    ]
    rows += [
        {"id": f"b{i:02d}", "split": "val", "prompt": "val only", "response": r, "label": label}
        | {"category": "x"}
        for i, (r, label) in enumerate(HELDOUT_VAL)
    ]
    rows += [
        {"id": f"c{i:02d}", "split": "test", "prompt": c, "response": r, "label": label}
        | {"category": ("x", "y")[i % 2]}
        for i, (c, r, label) in enumerate(HELDOUT_SEEN + HELDOUT_UNSEEN)
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_independent_judge_fits_on_no_train_response_and_takes_its_threshold_from_cv(
    tmp_path, monkeypatch
):
    fitted = []  # the responses of every fit: five folds, then all the fit rows
    real_fit = isaac.judge.fit_judge

    def spy(contexts, responses, *args, **kwargs):
        fitted.append(list(responses))
        return real_fit(contexts, responses, *args, **kwargs)

    monkeypatch.setattr("isaac.judge.fit_judge", spy)
    corpus = heldout_corpus(tmp_path / "c.parquet")
    out = tmp_path / "judge" / "heldout" / TFIDF
    main(
        ["--corpus", str(corpus), "--features", TFIDF, "--fit", "heldout"]
        + ["--config", NO_CROSS, "--out", str(out)]
    )
    m = json.loads((out / "metrics.json").read_text())
    # the fit rows: val and seen test less the three copies of train responses
    fit_rows = HELDOUT_VAL[:9] + [(r, label) for _, r, label in HELDOUT_SEEN if r != UNSAFE[0]]
    assert m["fit"] == "heldout" and m["n_fit"] == 12 and m["dropped_train_copies"] == 3
    assert m["fit_rows"] == {"test": 3, "val": 9}
    assert len(fitted) == CV_FOLDS + 1
    assert fitted[-1] == [r for r, _ in fit_rows]
    train_texts = {" ".join(r.lower().split()) for r in SAFE + UNSAFE}
    unseen_texts = {r for _, r, _ in HELDOUT_UNSEEN}
    for responses in fitted:
        assert not {" ".join(r.lower().split()) for r in responses} & train_texts
        assert not set(responses) & unseen_texts
    # the threshold: the best balanced accuracy over out-of-fold probabilities, recomputed
    y = np.array([label == "unsafe" for _, label in fit_rows])
    texts = np.array([r for r, _ in fit_rows])
    contexts = np.array(["val only"] * 9 + [c for c, r, _ in HELDOUT_SEEN if r != UNSAFE[0]])
    oof = np.empty(len(y))
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=0)
    for a, b in folds.split(texts, y):
        judge = real_fit(contexts[a], texts[a], y[a], TFIDF)
        oof[b] = judge.predict_proba(contexts[b], texts[b])
    accuracy = {t: balanced_accuracy_score(y, oof >= t) for t in sorted(set(oof))}
    best = max(accuracy.values())
    assert m["threshold_from"] == "cv"
    assert m["threshold"] == min(t for t, a in accuracy.items() if a == best)
    assert m["cv"]["auroc"] == pytest.approx(roc_auc_score(y, oof)) and m["cv"]["n"] == 12
    assert m["cv"]["folds"] == CV_FOLDS == 5
    # metrics on the unseen test contexts only (it never saw them), also per category
    judge = load_judge(out)
    assert judge.threshold == m["threshold"] and "auroc" not in m
    assert_metrics(m["unseen"], expected_metrics(judge, HELDOUT_UNSEEN))
    for category, rows in (("x", HELDOUT_UNSEEN[0::2]), ("y", HELDOUT_UNSEEN[1::2])):
        assert_metrics(m["unseen"]["by_category"][category], expected_metrics(judge, rows))


def test_independent_judge_uses_fewer_folds_for_a_rare_class_and_needs_two_rows(tmp_path):
    df = pd.read_parquet(heldout_corpus(tmp_path / "c.parquet"))
    unsafe_fit = df.index[df["split"].isin(["val", "test"]) & df["label"].eq("unsafe")]
    # 7 unsafe candidates, 2 of them train copies: keep 3 fit rows, then 1
    for n_drop, folds in ((2, 3), (4, None)):
        df.drop(unsafe_fit[:n_drop]).to_parquet(tmp_path / "c.parquet")
        out = tmp_path / f"j{n_drop}"
        if folds is None:
            with pytest.raises(InputError, match=r"c.parquet: the held-out fit rows .* single"):
                build_judge(tmp_path / "c.parquet", TFIDF, out, fit="heldout")
            assert not out.exists()
        else:
            m = build_judge(tmp_path / "c.parquet", TFIDF, out, fit="heldout")
            assert m["cv"]["folds"] == folds and m["cv"]["unsafe_share"] == 3 / m["n_fit"]
