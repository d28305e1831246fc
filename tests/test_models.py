"""Generators: corpus tokenizer, tiny GPT-2, local checkpoints (causal and seq2seq), SmolLM2."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import torch

from conftest import schema_defaults, settings
from isaac.cli import run
from isaac.generator_tokenizer import main, tokenizer_texts, train_tokenizer
from isaac.io import InputError
from isaac.lm import build_examples, prompt_ids
from isaac.models import (
    FORMAT_FILE,
    SEP,
    GeneratorConfig,
    TinyConfig,
    build_generator,
    load_generator,
    save_generator,
    tiny_gpt2,
)
from isaac.settings import from_dict, to_json
from isaac.train import TrainConfig, train

TEXTS = [f"what do you think about {w} today" for w in ["cats", "dogs", "rain", "food"]] + [
    "i like it a lot",
    "that is not nice",
    "no idea, sorry!",
]
TINY_SIZE = {**schema_defaults("generator")["tiny"], "n_layer": 1, "n_head": 2, "n_embd": 32}


def generator(**overrides) -> GeneratorConfig:
    return settings(GeneratorConfig, "generator", **overrides)


def test_tokenizer_specials_round_trip_and_determinism(tmp_path):
    tok = train_tokenizer(TEXTS * 5, 300)
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.bos_token == "<bos>"
    assert tok.sep_token == SEP and tok.convert_tokens_to_ids(SEP) not in (None, tok.unk_token_id)
    text = "Ünïcode never seen: 42 ✓"  # byte-level: every byte stays encodable
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    a, b = tmp_path / "a", tmp_path / "b"
    tok.save_pretrained(str(a))
    train_tokenizer(TEXTS * 5, 300).save_pretrained(str(b))
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def _corpus(tmp_path):
    corpus = pd.DataFrame(
        {
            "id": ["a", "b"],
            "split": ["train", "test"],
            "prompt": ["hello there", "zzqqxx"],
            "response": ["hi", "zzqqxx"],
        }
    )
    corpus.to_parquet(tmp_path / "corpus.parquet")
    return tmp_path / "corpus.parquet"


def test_tokenizer_texts_are_train_prompts_then_responses(tmp_path):
    assert tokenizer_texts(_corpus(tmp_path)) == ["hello there", "hi"]


def generator_json(**tiny) -> str:
    """The generator section a generator_tokenizer job reads (tiny.vocab_size sizes it)."""
    defaults = schema_defaults("generator")
    return to_json(settings(GeneratorConfig, "generator", tiny={**defaults["tiny"], **tiny}))


def test_tokenizer_cli_uses_train_split_only(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="isaac.generator_tokenizer")
    main(
        [
            "--corpus",
            str(_corpus(tmp_path)),
            "--config",
            generator_json(vocab_size=300),
            "--out",
            str(tmp_path / "gen"),
        ]
    )
    vocab = json.loads((tmp_path / "gen" / "tokenizer.json").read_text())["model"]["vocab"]
    assert not any("zzq" in t or "qqx" in t for t in vocab)  # test text never merged
    assert any("there" in t for t in vocab)
    assert capsys.readouterr().out == ""  # it logs instead of printing
    assert any(
        r.name == "isaac.generator_tokenizer" and "gen" in r.getMessage() for r in caplog.records
    )


def test_tokenizer_cli_rejects_corpus_without_train(tmp_path):
    pd.DataFrame({"id": ["a"], "split": ["test"], "prompt": ["p"], "response": ["r"]}).to_parquet(
        tmp_path / "c.parquet"
    )
    with pytest.raises(InputError, match="c.parquet"):
        main(
            [
                "--corpus",
                str(tmp_path / "c.parquet"),
                "--config",
                generator_json(),
                "--out",
                str(tmp_path / "g"),
            ]
        )
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"tiny": {"vocab_size": 300}}, "missing key(s) n_layer, n_head, n_embd"),
        ({"n_merges": 10}, "unknown key(s) n_merges"),
    ],
)
def test_tokenizer_cli_config_must_have_exactly_its_keys(tmp_path, capsys, config, problem):
    out = tmp_path / "gen"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "--corpus",
                str(_corpus(tmp_path)),
                "--config",
                json.dumps({**schema_defaults("generator"), **config}),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert problem in err
    assert not out.exists()


def test_tiny_default_size_and_seeded_init():
    tok = train_tokenizer(TEXTS * 5, 300)
    # The schema's default tiny config, with its default vocabulary size.
    default = from_dict(TinyConfig, schema_defaults("generator")["tiny"])

    class FakeTok:
        def __init__(self):
            self.bos_token_id, self.eos_token_id, self.pad_token_id = 1, 2, 0

        def __len__(self):
            return default.vocab_size

    big = tiny_gpt2(FakeTok(), default, seed=0)
    assert 2e6 <= sum(p.numel() for p in big.parameters()) <= 4e6
    small = TinyConfig(vocab_size=300, n_layer=1, n_head=2, n_embd=32)
    a, b, c = (tiny_gpt2(tok, small, seed=s) for s in (0, 0, 1))
    wa, wb, wc = (m.transformer.wte.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_tiny_n_embd_must_divide_heads():
    tok = train_tokenizer(TEXTS, 300)
    with pytest.raises(InputError, match="n_embd"):
        tiny_gpt2(tok, TinyConfig(vocab_size=300, n_layer=1, n_head=3, n_embd=32), seed=0)


def test_tiny_needs_the_tokenizer_folder():
    with pytest.raises(InputError, match="--tokenizer"):
        build_generator(generator(model="tiny-gpt2", tiny=TINY_SIZE), None, seed=0)


@pytest.fixture
def tok_dir(tmp_path):
    tok = train_tokenizer(TEXTS * 5, 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    return tmp_path / "tok"


def test_save_load_round_trip_keeps_format_and_logits(tmp_path, tok_dir):
    gen = build_generator(
        generator(model="tiny-gpt2", tiny=TINY_SIZE, max_prompt_tokens=7), tok_dir, seed=3
    )
    assert gen.fmt.max_prompt_tokens == 7
    save_generator(gen, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "m" / FORMAT_FILE).read_text())
    assert saved["prompt_suffix"] == SEP
    assert saved["max_prompt_tokens"] == 7  # later stages cut prompts as training did
    again = load_generator(tmp_path / "m")
    ids = torch.tensor([[1, 5, 6, 7]])
    gen.model.eval()
    assert torch.allclose(gen.model(ids).logits, again.model(ids).logits)
    assert again.fmt == gen.fmt


def test_the_prompt_budget_defaults_to_the_schema_and_travels_with_the_model(tmp_path, tok_dir):
    gen = build_generator(generator(model="tiny-gpt2", tiny=TINY_SIZE), tok_dir, seed=0)
    assert gen.fmt.max_prompt_tokens == schema_defaults("generator")["max_prompt_tokens"]
    save_generator(gen, tmp_path / "m")
    assert load_generator(tmp_path / "m").fmt.max_prompt_tokens == gen.fmt.max_prompt_tokens


def test_load_generator_needs_format_file(tmp_path):
    with pytest.raises(InputError, match=FORMAT_FILE):
        load_generator(tmp_path)


def test_path_model_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="config.json"):
        build_generator(generator(model=str(tmp_path)), None, seed=0)


def _local_checkpoint(folder, tok_dir, model_class, config_class, **sizes):
    """A tiny randomly initialised checkpoint with the corpus tokenizer, saved to folder."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    cfg = config_class(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **sizes,
    )
    torch.manual_seed(0)
    model_class(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _local_t5(tmp_path, tok_dir):
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    pad = AutoTokenizer.from_pretrained(str(tok_dir)).pad_token_id
    sizes = dict(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    return _local_checkpoint(
        tmp_path / "t5",
        tok_dir,
        T5ForConditionalGeneration,
        T5Config,
        decoder_start_token_id=pad,
        **sizes,
    )


@pytest.mark.parametrize("lora", [False, True])
def test_local_seq2seq_checkpoint_trains_and_saves(tmp_path, tok_dir, lora):
    path = _local_t5(tmp_path, tok_dir)
    gen = build_generator(
        generator(model=str(path), lora=lora, lora_r=2, lora_alpha=4), None, seed=0
    )
    assert gen.fmt.seq2seq
    trainable = [n for n, p in gen.model.named_parameters() if p.requires_grad]
    assert all("lora" in n for n in trainable) == lora
    ex = build_examples(gen, ["hello there"], [["i like it"]], 16)
    assert len(ex) == 1 and len(ex[0]) == 1  # one group per prompt
    assert ex[0][0].decoder and ex[0][0].labels[-1] == gen.tokenizer.eos_token_id
    cfg = settings(TrainConfig, "train", max_steps=3, batch_size=2, learning_rate=1e-2)
    hist = train(gen, ex * 4, cfg, 0, tmp_path / "ck")
    assert len(hist) == 3
    save_generator(gen, tmp_path / "out")
    again = load_generator(tmp_path / "out")
    assert again.fmt.seq2seq and not hasattr(again.model, "peft_config")


def test_seq2seq_source_keeps_its_last_tokens_and_target_its_first(tmp_path, tok_dir):
    path = _local_t5(tmp_path, tok_dir)
    gen = build_generator(generator(model=str(path), max_prompt_tokens=5), None, seed=0)
    assert gen.fmt.seq2seq and gen.fmt.max_prompt_tokens == 5
    prompt = " ".join(TEXTS)
    full = gen.tokenizer(prompt)["input_ids"]
    assert len(full) > 5
    target = " ".join(TEXTS[::-1])
    ((e,),) = build_examples(gen, [prompt], [[target]], 12)
    assert e.decoder and e.input_ids == full[-5:] == prompt_ids(gen, prompt)
    t_ids = gen.tokenizer(text_target=target)["input_ids"]
    assert len(t_ids) > 12  # the target is cut to max_length, its end marker kept
    assert len(e.labels) == 12 and e.labels[:11] == t_ids[:11]
    assert e.labels[-1] == gen.tokenizer.eos_token_id
    # a prompt budget larger than max_length is fine for seq2seq: source and target are apart
    wide = build_generator(generator(model=str(path), max_prompt_tokens=40), None, seed=0)
    ((w,),) = build_examples(wide, [prompt], [[target]], 12)
    assert w.input_ids == full[-40:] and len(w.labels) == 12


@pytest.mark.pretrained
def test_smollm2_loads_from_gguf_and_takes_lora_steps(tmp_path):
    """Loading + two LoRA steps on two short examples (the model has 135 M parameters)."""
    from isaac.packaged import smollm2_gguf

    try:
        assert smollm2_gguf().is_file()
    except InputError as err:
        pytest.skip(str(err))
    gen = build_generator(generator(model="smollm2", lora_r=2, lora_alpha=4), None, seed=0)
    n_params = sum(p.numel() for p in gen.model.parameters())
    assert 1.3e8 < n_params < 1.4e8
    assert 0 < sum(p.numel() for p in gen.model.parameters() if p.requires_grad) < 2e6
    ex = build_examples(gen, ["Hi!", "How are you?"], [["Hello."], ["Fine, thanks."]], 24)
    before = {n: p.detach().clone() for n, p in gen.model.named_parameters() if p.requires_grad}
    cfg = settings(TrainConfig, "train", max_steps=2, batch_size=2, learning_rate=1e-3)
    hist = train(gen, ex, cfg, 0, tmp_path / "ck")
    assert len(hist) == 2 and all(r["loss"] > 0 for r in hist)
    changed = [
        n
        for n, p in gen.model.named_parameters()
        if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert changed


@pytest.mark.pretrained
def test_generator_base_dequantises_smollm2_once_for_every_train_job(tmp_path):
    """Training from the saved folder starts from exactly the GGUF's weights and prompt format."""
    from isaac import generator_base
    from isaac.models import load_smollm2

    generator_base.main(["--out", str(tmp_path / "base")])
    assert (tmp_path / "base" / "model.safetensors").is_file()
    config = generator(model="smollm2", lora_r=2, lora_alpha=4)
    from_base = build_generator(config, None, seed=0, base_dir=tmp_path / "base")
    reference, tokenizer = load_smollm2()
    assert from_base.fmt.prompt_prefix == "<|im_start|>user\n"
    assert from_base.fmt.target_suffix == tokenizer.eos_token
    expected = reference.state_dict()
    base = {
        n.removeprefix("base_model.model.").replace(".base_layer", ""): p
        for n, p in from_base.model.named_parameters()
        if "lora_" not in n
    }
    assert base, "no base weights"
    for name, value in base.items():
        assert torch.equal(value, expected[name]), name
    # The saved base is plain floats: a trained model built on it saves like any other.
    assert "quantization_config" not in json.loads((tmp_path / "base" / "config.json").read_text())
    save_generator(from_base, tmp_path / "model")
    assert load_generator(tmp_path / "model").fmt == from_base.fmt


def _local_llama(folder, tok_dir):
    """A tiny random Llama-architecture checkpoint (grouped-query attention, SwiGLU, RoPE):
    what `generator.model: /path/to/checkpoint` points at for a Llama-family model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    return _local_checkpoint(
        folder,
        tok_dir,
        LlamaForCausalLM,
        LlamaConfig,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **sizes,
    )


@pytest.mark.parametrize("lora", [False, True])
def test_a_local_llama_checkpoint_trains_through_the_train_command(tmp_path, tok_dir, lora):
    """The train stage's CLI, as the workflow calls it, on a Llama checkpoint: in full and with
    LoRA; the saved folder loads as a plain Llama and answers prompts."""
    import pandas as pd

    from isaac.generate import GenerateConfig, generate
    from isaac.train import LOG_FILE, main

    path = _local_llama(tmp_path / "llama", tok_dir)
    prompts = TEXTS * 4
    pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(prompts))],
            "prompt": prompts,
            "targets": [["ok ."]] * len(prompts),
        }
    ).to_parquet(tmp_path / "targets.parquet")
    spec = {**schema_defaults("generator"), "model": str(path), "lora": lora, "lora_r": 8}
    train_spec = {k: v for k, v in schema_defaults("train").items() if k != "rounds"}
    train_spec.update(max_steps=40, batch_size=4, learning_rate=2e-2)
    out = tmp_path / "model"
    run(
        main,
        [
            "--targets",
            str(tmp_path / "targets.parquet"),
            "--seed",
            "0",
            "--config",
            json.dumps(train_spec),
            "--generator",
            json.dumps(spec),
            "--checkpoints",
            str(tmp_path / "ck"),
            "--out",
            str(out),
        ],
    )
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))
    # rank-8 adapters on a random 32-wide model (its output layer frozen) learn far less
    assert log[-1]["loss"] < (0.9 if lora else 0.5) * log[0]["loss"]
    gen = load_generator(out)
    assert type(gen.model).__name__ == "LlamaForCausalLM" and not hasattr(gen.model, "peft_config")
    base = load_generator_weights(path)
    trained = gen.model.state_dict()
    changed = {n for n, w in base.items() if not torch.equal(w, trained[n])}
    # LoRA merges its adapters into the linear layers only; full training moves the embeddings too
    assert changed and ("model.embed_tokens.weight" in changed) == (not lora)
    greedy = settings(GenerateConfig, "generate", max_new_tokens=4, do_sample=False)
    answers = generate(gen, TEXTS[:2], greedy, seed=0)
    assert len(answers) == 2 and (lora or answers == ["ok ."] * 2)


def load_generator_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_path_model_asking_for_its_own_code_is_refused_naming_its_config(tmp_path):
    """Without the check, a known model_type loads as the stock class, its author's code
    silently left out; an unknown one stops in a transformers traceback."""
    config = {"model_type": "gpt2", "auto_map": {"AutoModelForCausalLM": "custom.Model"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=f"{tmp_path / 'config.json'}: auto_map asks for"):
        build_generator(generator(model=str(tmp_path)), None, seed=0)
