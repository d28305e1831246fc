"""Generation: which prompts, left padding, determinism of sampling."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from isaac.cli import run
from isaac.generate import (
    MAX_PROMPT_TOKENS,
    GenerateConfig,
    encode_prompts,
    generate,
    main,
    select_test_prompts,
)
from isaac.generator_tokenizer import train_tokenizer
from isaac.io import InputError
from isaac.lm import build_examples
from isaac.models import GeneratorConfig, build_generator, save_generator
from isaac.settings import to_json
from isaac.train import TrainConfig, train

from conftest import schema_defaults, settings

PROMPTS = [f"what do you think about {w} today ?" for w in ["cats", "dogs", "rain", "food"] * 6]
TARGETS = [[f"i like {p.split()[5]} a lot ."] for p in PROMPTS]
TINY = settings(GeneratorConfig, "generator", model="tiny-gpt2",
                tiny={**schema_defaults("generator")["tiny"], "n_layer": 2, "n_head": 2,
                      "n_embd": 64})


def generate_config(**overrides) -> GenerateConfig:
    return settings(GenerateConfig, "generate", **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    train_tokenizer(PROMPTS + [t[0] for t in TARGETS], 300).save_pretrained(str(tmp / "tok"))
    gen = build_generator(TINY, tmp / "tok", seed=0)
    train(gen, build_examples(gen, PROMPTS, TARGETS, 48),
          settings(TrainConfig, "train", epochs=60, batch_size=8, learning_rate=5e-3), 0,
          tmp / "ck")
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
    prompts = ["hi", "what do you think about cats today ?"]
    enc = encode_prompts(gen, prompts, MAX_PROMPT_TOKENS)
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1
    assert enc["input_ids"][0, 0] == gen.tokenizer.pad_token_id


def test_greedy_learns_the_pattern_and_batching_does_not_change_it(trained):
    gen, _ = trained
    prompts = ["what do you think about dogs today ?", "hi", "what do you think about rain today ?"]
    greedy = generate_config(max_new_tokens=10, do_sample=False)
    batched = generate(gen, prompts, dataclasses.replace(greedy, batch_size=3))
    single = [generate(gen, [p], greedy)[0] for p in prompts]
    assert batched == single
    assert batched[0] == "i like dogs a lot ." and batched[2] == "i like rain a lot ."


def test_sampling_is_deterministic_for_a_seed(trained):
    gen, _ = trained
    cfg = generate_config(max_new_tokens=8, do_sample=True, temperature=3.0, top_p=1.0,
                          batch_size=4, seed=1)
    a = generate(gen, PROMPTS[:8], cfg)
    assert a == generate(gen, PROMPTS[:8], cfg)
    assert a != generate(gen, PROMPTS[:8], dataclasses.replace(cfg, seed=2))


def test_cli_writes_generations_table(tmp_path, trained):
    _, model = trained
    out = tmp_path / "generations" / "raw" / "tau1.0-m1-seed0.parquet"
    config = to_json(generate_config(n_prompts=3, max_new_tokens=6))
    main(["--model", str(model), "--corpus", str(corpus(tmp_path)),
          "--config", config, "--out", str(out)])
    df = pd.read_parquet(out)
    assert df.columns.tolist() == ["id", "prompt", "reference", "generation"]
    assert df["id"].tolist() == ["t1", "t2", "t3"]
    assert df["generation"].iloc[0] == "i like cats a lot ."
    first = out.read_bytes()
    main(["--model", str(model), "--corpus", str(corpus(tmp_path)),
          "--config", config, "--out", str(out)])
    assert out.read_bytes() == first


@pytest.mark.parametrize("config, problem", [
    ({k: v for k, v in schema_defaults("generate").items() if k != "top_p"},
     "--config: missing key(s) top_p"),
    ({**schema_defaults("generate"), "max_prompt_tokens": 64},
     "--config: unknown key(s) max_prompt_tokens"),
    ({**schema_defaults("generate"), "do_sample": "yes"}, "--config.do_sample"),
])
def test_cli_config_must_have_exactly_its_keys(tmp_path, trained, capsys, config, problem):
    _, model = trained
    out = tmp_path / "generations" / "raw" / "tau1.0-m1-seed0.parquet"
    with pytest.raises(SystemExit) as exit_:
        run(main, ["--model", str(model), "--corpus", str(corpus(tmp_path)),
                   "--config", json.dumps(config), "--out", str(out)])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.parent.exists()
