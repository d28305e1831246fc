"""Generation: left padding, the prompt truncation rule, length-sorted batches written back in
the input order, per-batch decoding seeds, the decoding dtype."""

from __future__ import annotations

import dataclasses
import json
import sys

import pandas as pd
import pytest
import torch

from conftest import REPO, schema_defaults, settings
from isaac.cli import run
from isaac.generate import (
    GenerateConfig,
    batch_seed,
    generate,
    generation_dtype,
    length_order,
    main,
    pad_batch,
)
from isaac.generator_tokenizer import train_tokenizer
from isaac.lm import build_examples, prompt_ids
from isaac.models import GeneratorConfig, build_generator, save_generator
from isaac.settings import to_json
from isaac.train import TrainConfig, train

PROMPTS = [f"what do you think about {w} today ?" for w in ["cats", "dogs", "rain", "food"] * 6]
TARGETS = [[f"i like {p.split()[5]} a lot ."] for p in PROMPTS]
TINY = settings(
    GeneratorConfig,
    "generator",
    model="tiny-gpt2",
    tiny={**schema_defaults("generator")["tiny"], "n_layer": 2, "n_head": 2, "n_embd": 64},
)


def generate_config(**overrides) -> GenerateConfig:
    return settings(GenerateConfig, "generate", **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    train_tokenizer(PROMPTS + [t[0] for t in TARGETS], 300).save_pretrained(str(tmp / "tok"))
    gen = build_generator(TINY, tmp / "tok", seed=0)
    train(
        gen,
        build_examples(gen, PROMPTS, TARGETS, 48),
        settings(TrainConfig, "train", epochs=60, batch_size=8, learning_rate=5e-3),
        0,
        tmp / "ck",
    )
    save_generator(gen, tmp / "model")
    return gen, tmp / "model"


def test_prompts_are_left_padded(trained):
    gen, _ = trained
    prompts = ["hi", "what do you think about cats today ?"]
    rows = [prompt_ids(gen, p) for p in prompts]
    enc = pad_batch(gen, rows)
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1
    assert enc["input_ids"][0, 0] == gen.tokenizer.pad_token_id
    for i, r in enumerate(rows):  # every row ends at the right edge, as training saw it
        assert enc["input_ids"][i, -len(r) :].tolist() == r
        assert int(enc["attention_mask"][i].sum()) == len(r)


def test_prompts_keep_their_last_tokens_as_in_training(trained):
    """One truncation rule: generation sees the prompt ids training and perplexity see."""
    gen, _ = trained
    long = " ".join(PROMPTS[:6])
    full = gen.tokenizer(gen.fmt.prompt_text(long), add_special_tokens=False)["input_ids"]
    budget = gen.fmt.max_prompt_tokens
    assert len(full) > budget
    enc = pad_batch(gen, [prompt_ids(gen, p) for p in (long, "hi")])
    assert enc["input_ids"].shape[1] == budget
    assert enc["input_ids"][0].tolist() == full[-budget:]
    example = build_examples(gen, [long], [["i like it ."]], 4 * budget)[0][0]
    assert example.input_ids[:budget] == full[-budget:]


# Prompts of very different token lengths (4 to 48), longest in the middle.
MIXED = [
    "what do you think about dogs today ?",
    "hi",
    " ".join(PROMPTS[:7]),
    "what do you think about rain today ?",
    "why ?",
    "what do you think about cats today ? what do you think about rain today ?",
    "what do you think about food today ?",
    "cats",
    "dogs today ?",
]


def test_length_order_is_a_stable_sort_on_token_length():
    rows = [[1, 2], [1], [1, 2, 3], [4], [5, 6]]
    assert length_order(rows) == [1, 3, 0, 4, 2]
    assert length_order([]) == []


def test_greedy_is_the_same_at_any_batch_size_and_keeps_the_input_order(trained):
    """Length-sorted batches of 8 (mixed lengths, most rows padded in the unsorted order) give
    what one prompt at a time gives, written back at each prompt's own row."""
    gen, _ = trained
    greedy = generate_config(max_new_tokens=10, do_sample=False)
    single = generate(gen, MIXED, dataclasses.replace(greedy, batch_size=1), 0)
    batched = generate(gen, MIXED, dataclasses.replace(greedy, batch_size=8), 0)
    assert batched == single
    assert batched[0] == "i like dogs a lot ."
    assert batched[3] == "i like rain a lot ."
    assert batched[6] == "i like food a lot ."
    assert batched[::-1] == generate(gen, MIXED[::-1], dataclasses.replace(greedy, batch_size=8), 0)


def test_batches_hold_similar_lengths(trained, monkeypatch):
    """generate hands the model the length-sorted batches, which pad less than the table's order."""
    gen, _ = trained
    rows = [prompt_ids(gen, p) for p in MIXED]
    masks = []
    original = gen.model.generate

    def spy(*args, **kwargs):
        masks.append(kwargs["attention_mask"].cpu())
        return original(*args, **kwargs)

    monkeypatch.setattr(gen.model, "generate", spy)
    generate(gen, MIXED, generate_config(max_new_tokens=2, do_sample=False, batch_size=3), 0)
    lengths = sorted(len(r) for r in rows)
    assert [m.sum(1).tolist() for m in masks] == [lengths[i : i + 3] for i in range(0, 9, 3)]

    def padding(batches):
        return sum(int((pad_batch(gen, b)["attention_mask"] == 0).sum()) for b in batches)

    order = length_order(rows)
    unsorted = padding([rows[i : i + 3] for i in range(0, 9, 3)])
    ordered = padding([[rows[j] for j in order[i : i + 3]] for i in range(0, 9, 3)])
    assert ordered == sum(int((m == 0).sum()) for m in masks)
    assert ordered < unsorted


def test_sampling_mixed_lengths_is_reproducible(trained):
    gen, _ = trained
    cfg = sampling(batch_size=3)
    a = generate(gen, MIXED, cfg, 4)
    assert a == generate(gen, MIXED, cfg, 4)
    assert a != generate(gen, MIXED, cfg, 5)


def test_decoding_keeps_the_cache_in_float32_on_the_cpu(trained, monkeypatch):
    gen, _ = trained
    seen = []
    original = gen.model.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["use_cache"], next(gen.model.parameters()).dtype))
        return original(*args, **kwargs)

    monkeypatch.setattr(gen.model, "generate", spy)
    generate(gen, MIXED[:2], generate_config(max_new_tokens=2), 0)
    assert seen == [(True, torch.float32)]


def test_bfloat16_only_on_a_cuda_gpu_that_supports_it(monkeypatch):
    assert generation_dtype(torch.device("cpu")) == torch.float32
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert generation_dtype(torch.device("cuda")) == dtype
        assert generation_dtype(torch.device("cpu")) == torch.float32


def test_generation_benchmark_counts_tokens_to_the_first_end_and_padding(trained):
    """bench/gpu_generate.py's counts, on the CPU (it times nothing that is asserted)."""
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_generate import measure, new_tokens

    ids = torch.tensor([[5, 6, 2, 0, 0], [5, 5, 5, 5, 5], [2, 2, 2, 2, 2]])
    assert new_tokens(ids, 2) == 3 + 5 + 1  # pad == eos (the last row) still counts one end
    gen, _ = trained
    rows = [prompt_ids(gen, p) for p in MIXED]
    order = length_order(rows)
    masks = [
        pad_batch(gen, [rows[j] for j in order[i : i + 4]])["attention_mask"] for i in (0, 4, 8)
    ]
    row = measure(gen, MIXED, generate_config(max_new_tokens=3, do_sample=False, batch_size=4), 0)
    assert row["batch_size"] == 4 and row["batches"] == 3
    assert row["new_tokens"] == 3 * len(MIXED)  # the pattern needs more than 3 tokens
    assert row["prompt_padding_share"] == sum(int((m == 0).sum()) for m in masks) / sum(
        m.numel() for m in masks
    )
    assert "generate" not in vars(gen.model)  # the spy is gone


def sampling(**overrides) -> GenerateConfig:
    return generate_config(
        **{
            **dict(max_new_tokens=8, do_sample=True, temperature=3.0, top_p=1.0, batch_size=4),
            **overrides,
        }
    )


def test_sampling_is_deterministic_for_a_seed_and_seeds_differ(trained):
    gen, _ = trained
    cfg = sampling()
    a = generate(gen, PROMPTS[:8], cfg, 1)
    assert a == generate(gen, PROMPTS[:8], cfg, 1)
    b = generate(gen, PROMPTS[:8], cfg, 2)
    assert a != b
    assert sum(x != y for x, y in zip(a, b)) >= 4  # not one row by chance: most rows differ


def test_batch_seeds_depend_on_seed_and_start():
    seeds = {batch_seed(s, start) for s in range(3) for start in (0, 4, 8)}
    assert len(seeds) == 9
    assert batch_seed(1, 4) == batch_seed(1, 4)
    assert all(0 <= x < 2**32 for x in seeds)


def _rng_at_each_batch(gen, monkeypatch):
    """Record the torch RNG state every time generate hands a batch to the model."""
    states = []
    original = gen.model.generate

    def spy(*args, **kwargs):
        states.append(torch.get_rng_state().clone())
        return original(*args, **kwargs)

    monkeypatch.setattr(gen.model, "generate", spy)
    return states


def test_every_batch_starts_from_its_own_seed(trained, monkeypatch):
    """Batch k's random stream is a function of (seed, its first row) alone: whatever earlier
    batches held or drew, it starts from torch.manual_seed(batch_seed(seed, start)). Seeding once
    per call would leave later batches in the state the earlier ones left."""
    gen, _ = trained
    cfg = sampling()
    states = _rng_at_each_batch(gen, monkeypatch)
    generate(gen, PROMPTS[:12], cfg, 5)
    assert len(states) == 3
    for state, start in zip(states, (0, 4, 8)):
        torch.manual_seed(batch_seed(5, start))
        assert torch.equal(state, torch.get_rng_state()), start


def test_a_prompt_draws_the_same_whatever_earlier_batches_generated(trained, monkeypatch):
    """Paired decoding: rows 4..7 generate the same text when rows 0..3 hold other (shorter, so
    still first in the length order) prompts: the earlier batch draws other tokens, possibly for
    a different number of steps."""
    gen, _ = trained
    cfg = sampling(max_new_tokens=12, temperature=1.5)
    others = ["hi", "no", "dogs today ?", "why ?"]
    a = generate(gen, PROMPTS[:8], cfg, 3)
    b = generate(gen, others + PROMPTS[4:8], cfg, 3)
    assert a[:4] != b[:4]
    assert a[4:] == b[4:]
    # The same prompts at another position (another start) draw another stream.
    c = generate(gen, PROMPTS[4:8] + PROMPTS[4:8], cfg, 3)
    assert c[4:] == a[4:] and c[:4] != a[4:]

    # Power: with one seed per call (torch seeded only once) the later rows follow the earlier
    # batch's draws, and this comparison sees it.
    seeded = []
    real = torch.manual_seed

    def once(value):
        if not seeded:
            seeded.append(value)
            return real(value)
        return None

    monkeypatch.setattr(torch, "manual_seed", once)
    a1 = generate(gen, PROMPTS[:8], cfg, 3)
    seeded.clear()
    b1 = generate(gen, others + PROMPTS[4:8], cfg, 3)
    monkeypatch.undo()
    assert a1[:4] == a[:4]  # the first batch is seeded the same way either way
    assert a1[4:] != b1[4:]


def _prompts_table(tmp_path, n=3) -> str:
    df = pd.DataFrame(
        {
            "id": ["t1", "t2", "t3"][:n],
            "prompt": [
                "what do you think about cats today ?",
                "hello there, a longer prompt than the others ?",
                "what do you think about rain today ?",
            ][:n],
            "seen": [False, True, False][:n],
        }
    )
    df.to_parquet(tmp_path / "prompts.parquet")
    return str(tmp_path / "prompts.parquet")


def test_cli_writes_generations_table(tmp_path, trained):
    gen, model = trained
    out = tmp_path / "generations" / "raw" / "tau1.0-m1-seed0.parquet"
    config = to_json(generate_config(max_new_tokens=6, do_sample=False))
    args = [
        "--model",
        str(model),
        "--prompts",
        _prompts_table(tmp_path),
        "--seed",
        "0",
        "--config",
        config,
        "--out",
        str(out),
    ]
    main(args)
    df = pd.read_parquet(out)
    assert df.columns.tolist() == ["id", "prompt", "seen", "generation"]
    assert df["id"].tolist() == ["t1", "t2", "t3"] and df["seen"].tolist() == [False, True, False]
    assert df["generation"].iloc[0] == "i like cats a lot ."
    first = out.read_bytes()
    main(args)
    assert out.read_bytes() == first


def test_cli_samples_with_the_run_seed(tmp_path, trained):
    gen, model = trained
    cfg = sampling(batch_size=2)
    prompts = _prompts_table(tmp_path)
    outs = {}
    for seed in (0, 1):
        outs[seed] = tmp_path / f"seed{seed}.parquet"
        main(
            [
                "--model",
                str(model),
                "--prompts",
                prompts,
                "--seed",
                str(seed),
                "--config",
                to_json(cfg),
                "--out",
                str(outs[seed]),
            ]
        )
    texts = pd.read_parquet(prompts)["prompt"].tolist()
    for seed, out in outs.items():
        assert pd.read_parquet(out)["generation"].tolist() == generate(gen, texts, cfg, seed)
    assert (
        pd.read_parquet(outs[0])["generation"].tolist()
        != pd.read_parquet(outs[1])["generation"].tolist()
    )


GENERATE_KEYS = {f.name for f in dataclasses.fields(GenerateConfig)}
DECODING = {k: v for k, v in schema_defaults("generate").items() if k in GENERATE_KEYS}


@pytest.mark.parametrize(
    "config, problem",
    [
        ({k: v for k, v in DECODING.items() if k != "top_p"}, "--config: missing key(s) top_p"),
        ({**DECODING, "max_prompt_tokens": 64}, "--config: unknown key(s) max_prompt_tokens"),
        ({**DECODING, "seed": 0}, "--config: unknown key(s) seed"),
        ({**DECODING, "n_prompts": 5}, "--config: unknown key(s) n_prompts"),
        (schema_defaults("prompts"), "--config: unknown key(s) n_prompts, select"),
        ({**DECODING, "do_sample": "yes"}, "--config.do_sample"),
    ],
)
def test_cli_config_must_have_exactly_its_keys(tmp_path, trained, capsys, config, problem):
    _, model = trained
    out = tmp_path / "generations" / "raw" / "tau1.0-m1-seed0.parquet"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "--model",
                str(model),
                "--prompts",
                _prompts_table(tmp_path),
                "--seed",
                "0",
                "--config",
                json.dumps(config),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.parent.exists()


def test_cli_refuses_an_empty_prompts_table_or_missing_columns(tmp_path, trained, capsys):
    _, model = trained
    out = tmp_path / "generations" / "g.parquet"
    config = to_json(generate_config())
    pd.DataFrame({"id": [], "prompt": [], "seen": []}).to_parquet(tmp_path / "empty.parquet")
    pd.DataFrame({"id": ["a"], "prompt": ["p"]}).to_parquet(tmp_path / "noseen.parquet")
    for name, problem in [
        ("empty.parquet", "empty.parquet: no prompts"),
        ("noseen.parquet", "missing column(s) seen"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            run(
                main,
                [
                    "--model",
                    str(model),
                    "--prompts",
                    str(tmp_path / name),
                    "--seed",
                    "0",
                    "--config",
                    config,
                    "--out",
                    str(out),
                ],
            )
        assert exit_.value.code == 2
        assert problem in capsys.readouterr().err
    assert not out.parent.exists()


def test_cli_needs_the_seed(tmp_path, trained, capsys):
    _, model = trained
    out = tmp_path / "g.parquet"
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "--model",
                str(model),
                "--prompts",
                _prompts_table(tmp_path),
                "--config",
                to_json(generate_config()),
                "--out",
                str(out),
            ]
        )
    assert exit_.value.code == 2 and "--seed" in capsys.readouterr().err
    assert not out.exists()
