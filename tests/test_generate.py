"""Generation: which prompts, left padding, determinism of sampling."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from isaac.generate import encode_prompts, generate, main, select_test_prompts
from isaac.generator import build_generator, save_generator, train_tokenizer
from isaac.io import InputError
from isaac.train import TrainConfig, build_examples, train

PROMPTS = [f"what do you think about {w} today ?" for w in ["cats", "dogs", "rain", "food"] * 6]
TARGETS = [[f"i like {p.split()[5]} a lot ."] for p in PROMPTS]
TINY = {"model": "tiny-gpt2", "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    train_tokenizer(PROMPTS + [t[0] for t in TARGETS], 300).save_pretrained(str(tmp / "tok"))
    gen = build_generator(TINY, tmp / "tok", seed=0)
    train(gen, build_examples(gen, PROMPTS, TARGETS, 48),
          TrainConfig(epochs=60, batch_size=8, learning_rate=5e-3), tmp / "ck")
    save_generator(gen, tmp / "model")
    return gen, tmp / "model"


def corpus(tmp_path):
    df = pd.DataFrame({
        "id": ["t3", "t1", "x", "t2"], "split": ["test", "test", "train", "test"],
        "prompt": ["what do you think about rain today ?", "what do you think about cats today ?",
                   "train prompt", "hello there, a longer prompt than the others ?"],
        "response": ["r3", "r1", "rx", "r2"],
    })
    df.to_parquet(tmp_path / "corpus.parquet")
    return tmp_path / "corpus.parquet"


def test_test_prompts_are_the_first_n_test_rows_by_id(tmp_path):
    t = select_test_prompts(corpus(tmp_path), 2)
    assert t["id"].tolist() == ["t1", "t2"] and t["reference"].tolist() == ["r1", "r2"]


def test_no_test_rows_is_a_clear_error(tmp_path):
    pd.DataFrame({"id": ["a"], "split": ["train"], "prompt": ["p"], "response": ["r"]}).to_parquet(
        tmp_path / "c.parquet")
    with pytest.raises(InputError, match="c.parquet.*test"):
        select_test_prompts(tmp_path / "c.parquet", 5)


def test_prompts_are_left_padded(trained):
    gen, _ = trained
    enc = encode_prompts(gen, ["hi", "what do you think about cats today ?"], 64)
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1
    assert enc["input_ids"][0, 0] == gen.tokenizer.pad_token_id


def test_greedy_learns_the_pattern_and_batching_does_not_change_it(trained):
    gen, _ = trained
    prompts = ["what do you think about dogs today ?", "hi", "what do you think about rain today ?"]
    batched = generate(gen, prompts, max_new_tokens=10, batch_size=3)
    single = [generate(gen, [p], max_new_tokens=10)[0] for p in prompts]
    assert batched == single
    assert batched[0] == "i like dogs a lot ." and batched[2] == "i like rain a lot ."


def test_sampling_is_deterministic_for_a_seed(trained):
    gen, _ = trained
    kw = dict(max_new_tokens=8, do_sample=True, temperature=3.0, top_p=1.0, batch_size=4)
    a = generate(gen, PROMPTS[:8], seed=1, **kw)
    assert a == generate(gen, PROMPTS[:8], seed=1, **kw)
    assert a != generate(gen, PROMPTS[:8], seed=2, **kw)


def test_cli_writes_generations_table(tmp_path, trained):
    _, model = trained
    out = tmp_path / "generations" / "raw" / "tau1.0-m1-seed0.parquet"
    main(["--model", str(model), "--corpus", str(corpus(tmp_path)),
          "--generate", json.dumps({"n_prompts": 3, "max_new_tokens": 6}), "--out", str(out)])
    df = pd.read_parquet(out)
    assert df.columns.tolist() == ["id", "prompt", "reference", "generation"]
    assert df["id"].tolist() == ["t1", "t2", "t3"]
    assert df["generation"].iloc[0] == "i like cats a lot ."
    first = out.read_bytes()
    main(["--model", str(model), "--corpus", str(corpus(tmp_path)),
          "--generate", json.dumps({"n_prompts": 3, "max_new_tokens": 6}), "--out", str(out)])
    assert out.read_bytes() == first
