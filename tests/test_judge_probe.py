"""The judge probe: frequent train responses and fixed replies, each given to every unseen
prompt, judged by every configured judge."""

from __future__ import annotations

import pandas as pd
import pytest

from isaac.constant import frequent_responses
from isaac.io import InputError
from isaac.judge import build_judge, load_judge
from isaac.judge_probe import FIXED_REPLIES, main, probe, probe_replies

SAFE = ["that sounds lovely", "i hope you feel better soon", "thanks for sharing that"]
UNSAFE = ["you are a stupid idiot", "shut up idiot", "stupid people like you"]


def corpus(path):
    rows = [
        ("t0", "train", "hi", "Thanks for sharing that", "safe"),
        ("t1", "train", "hello", "thanks  for sharing THAT", "unsafe"),
        ("t2", "train", "hey", "you are a stupid idiot", "unsafe"),
        ("t3", "train", "yo", "You are a stupid idiot", None),
        ("t4", "train", "sup", "that sounds lovely", "safe"),
        ("t5", "train", "hm", "", "safe"),
        ("t6", "train", "ok", "", "safe"),
        ("t7", "train", "so", "", "safe"),
    ]
    rows += [
        (f"x{i}", "train", f"context {i % 3}", r, "safe" if r in SAFE else "unsafe")
        for i, r in enumerate(SAFE + UNSAFE)
    ]
    rows += [
        (f"v{i}", "val", f"context {i % 3}", r, "safe" if r in SAFE else "unsafe")
        for i, r in enumerate(SAFE + UNSAFE)
    ]
    rows += [("s0", "test", "an unseen question", "ok", "safe")]
    rows += [("s1", "test", "another new one", "ok", "safe")]
    pd.DataFrame(rows, columns=["id", "split", "prompt", "response", "label"]).to_parquet(path)
    return path


def test_frequent_responses_count_normalised_text_first_spelling_wins(tmp_path):
    train = pd.read_parquet(corpus(tmp_path / "c.parquet")).query("split == 'train'")
    top = frequent_responses(train["response"], 2)
    # "thanks for sharing that" x3 and "you are a stupid idiot" x3 tie: first in corpus order
    # wins; the empty response (x3) is never a reply
    assert top["response"].tolist() == ["Thanks for sharing that", "you are a stupid idiot"]
    assert top["count"].tolist() == [3, 3]
    # labels reported over the labelled rows only
    replies = probe_replies(train, n_frequent=2)
    assert replies["train_unsafe_share"].iloc[:2].tolist() == pytest.approx([1 / 3, 1.0])


def test_probe_rows_are_frequent_then_fixed_replies(tmp_path):
    train = pd.read_parquet(corpus(tmp_path / "c.parquet")).query("split == 'train'")
    replies = probe_replies(train, n_frequent=3)
    fixed = [r for replies_ in FIXED_REPLIES.values() for r in replies_]
    assert replies["reply"].tolist()[3:] == fixed
    assert replies["train_count"].iloc[3:].isna().all()


def test_probe_reports_each_judges_safe_share(tmp_path):
    path = corpus(tmp_path / "c.parquet")
    build_judge(path, "tfidf-lr", tmp_path / "judge")
    judge = load_judge(tmp_path / "judge")
    replies = pd.DataFrame({"reply": ["shut up idiot", "that sounds lovely"]})
    prompts = pd.Series(["context 0", "context 1", "context 2"])
    table = probe(replies, prompts, {"primary": judge})
    expected = [1.0 - judge.unsafe(list(prompts), [r] * 3).mean() for r in replies["reply"]]
    assert table["safe_primary"].tolist() == pytest.approx(expected)
    assert table["safe_primary"].iloc[0] < table["safe_primary"].iloc[1]


def test_cli_writes_both_tables_and_refuses_no_unseen_prompt(tmp_path):
    path = corpus(tmp_path / "c.parquet")
    build_judge(path, "tfidf-lr", tmp_path / "judge")
    prompts = tmp_path / "prompts.parquet"
    pd.DataFrame({"id": ["s0", "s1"], "prompt": ["a", "b"], "seen": [False, True]}).to_parquet(
        prompts
    )
    args = ["--corpus", str(path), "--prompts", str(prompts), "--judge", str(tmp_path / "judge")]
    out = ["--out", str(tmp_path / "p.csv"), "--markdown", str(tmp_path / "p.md")]
    main([*args, "--second-judge", str(tmp_path / "judge"), *out])
    table = pd.read_csv(tmp_path / "p.csv")
    assert {"safe_primary", "safe_second"} <= set(table.columns)
    assert "1 unseen test prompts" in (tmp_path / "p.md").read_text()
    pd.DataFrame({"id": ["s0"], "prompt": ["a"], "seen": [True]}).to_parquet(prompts)
    with pytest.raises(InputError, match="prompts.parquet: no unseen prompt"):
        main([*args, "--out", str(tmp_path / "q.csv"), "--markdown", str(tmp_path / "q.md")])
    assert not (tmp_path / "q.csv").exists()
