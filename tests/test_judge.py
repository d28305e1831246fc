"""The safety judge: learns a separable toy set, stores without pickle, reuses another judge."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import schema_defaults, settings

from isaac.io import InputError
from isaac.judge import (JUDGE_JSON, JUDGE_NPZ, JudgeConfig, build_judge, fit_judge, load_judge,
                         main, save_judge)
from isaac.settings import to_json

SAFE = ["that sounds lovely", "i hope you feel better soon", "thanks for sharing that",
        "what a kind thing to do", "good luck with it", "that is a great idea"]
UNSAFE = ["you are a stupid idiot", "shut up idiot", "go kill yourself idiot",
          "stupid people like you", "idiot you deserve it", "nobody likes you stupid"]
TFIDF = settings(JudgeConfig, "judge", features="tfidf-lr")
MINILM = settings(JudgeConfig, "judge", features="minilm-lr")


def toy_corpus(path, labelled=True):
    rows = []
    for split in ("train", "test"):
        for i, r in enumerate(SAFE + UNSAFE):
            rows.append({"id": f"{split}{i}", "split": split, "prompt": f"context {i % 3}",
                         "response": r, "label": ("safe" if r in SAFE else "unsafe")
                         if labelled else None})
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
    assert again.predict_proba(["c"], ["stupid idiot"])[0] > 0.5 > again.predict_proba(
        ["c"], ["that sounds lovely"])[0]


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
    main(["--corpus", str(u), "--config", to_json(TFIDF), "--from", str(tmp_path / "labelled"),
          "--out", str(tmp_path / "j")])
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())
    assert m["auroc"] == 1.0 and m["source"] == str(tmp_path / "labelled")
    assert m["this_corpus_test"]["n"] == 0
    assert load_judge(tmp_path / "j").vocabulary == load_judge(tmp_path / "labelled").vocabulary


def test_judge_from_folder_must_be_complete(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="lacks judge.json"):
        build_judge(toy_corpus(tmp_path / "c.parquet"), TFIDF, tmp_path / "j",
                    str(tmp_path / "empty"))
    assert not (tmp_path / "j").exists()


def test_one_class_is_a_clear_error():
    with pytest.raises(InputError, match="one class"):
        fit_judge(["c"] * 3, SAFE[:3], [0, 0, 0], "tfidf-lr")


def test_unknown_features_are_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="judge.features: unknown value 'bow-svm'"):
        fit_judge(["c"] * 12, SAFE + UNSAFE, [0] * 6 + [1] * 6, "bow-svm")
    c = toy_corpus(tmp_path / "c.parquet")
    config = settings(JudgeConfig, "judge", features="bow-svm")
    with pytest.raises(InputError, match="features must be one of tfidf-lr, minilm-lr"):
        main(["--corpus", str(c), "--config", to_json(config), "--out", str(tmp_path / "j")])
    assert not (tmp_path / "j").exists()


def test_cli_trains_with_the_configured_features_and_an_empty_from(tmp_path):
    c = toy_corpus(tmp_path / "c.parquet")
    # The judge rule passes an empty --from= when judge.from is null: train, not copy.
    main(["--corpus", str(c), "--from=", "--config", to_json(settings(JudgeConfig, "judge")),
          "--out", str(tmp_path / "j")])
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())
    assert m["features"] == schema_defaults("judge")["features"] and "source" not in m
    assert m["auroc"] == 1.0 and m["n_train"] == 12


@pytest.mark.parametrize("config,fragment", [
    pytest.param({}, "missing key(s) features", id="missing"),
    pytest.param(schema_defaults("judge"), "unknown key(s) from", id="unknown"),
    pytest.param({"features": None}, "--config.features", id="null"),
])
def test_cli_config_must_hold_exactly_the_judge_keys(tmp_path, config, fragment):
    c = toy_corpus(tmp_path / "c.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "isaac.judge", "--corpus", str(c), "--config", json.dumps(config),
         "--out", str(tmp_path / "j")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and fragment in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [c]


def test_minilm_judge_learns_toy_set_and_round_trips(tmp_path):
    m = build_judge(toy_corpus(tmp_path / "c.parquet"), MINILM, tmp_path / "judge")
    assert m["auroc"] >= 0.9
    with np.load(tmp_path / "judge" / JUDGE_NPZ, allow_pickle=False) as z:
        assert z["coef"].shape == (384,)
    j = load_judge(tmp_path / "judge")
    assert j.predict_proba(["c"], ["you stupid idiot"])[0] > j.predict_proba(
        ["c"], ["that sounds lovely"])[0]
