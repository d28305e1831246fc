"""Training: target-only loss, bucketing, a loss that falls, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from isaac.cli import run
from isaac.generator_tokenizer import train_tokenizer
from isaac.io import InputError
from isaac.lm import IGNORE, build_examples, collate, token_nll
from isaac.models import GeneratorConfig, build_generator
from isaac.settings import from_dict
from isaac.train import LOG_FILE, TrainConfig, bucket_order, main, train

from conftest import schema_defaults, settings

PROMPTS = [f"what do you think about {w} today ?" for w in ["cats", "dogs", "rain", "food"] * 6]
TARGETS = [[f"i like {p.split()[5]} a lot ."] for p in PROMPTS]
TINY_SPEC = {**schema_defaults("generator"), "model": "tiny-gpt2",
             "tiny": {**schema_defaults("generator")["tiny"], "n_layer": 1, "n_head": 2,
                      "n_embd": 32}}
TINY = from_dict(GeneratorConfig, TINY_SPEC)


def train_config(**overrides) -> TrainConfig:
    return settings(TrainConfig, "train", **overrides)


@pytest.fixture
def tok_dir(tmp_path):
    tok = train_tokenizer(PROMPTS + [t[0] for t in TARGETS], 300)
    tok.save_pretrained(str(tmp_path / "tok"))
    return tmp_path / "tok"


def test_prompt_and_padding_carry_no_labels(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = build_examples(gen, ["hello", "what do you think about cats today ?"],
                        [["hi ."], ["i like cats a lot ."]], 64)
    for e, target in zip(ex, ["hi .", "i like cats a lot ."]):
        n_prompt = sum(lab == IGNORE for lab in e.labels)
        assert all(lab == IGNORE for lab in e.labels[:n_prompt])
        target_ids = gen.tokenizer(target + "<eos>", add_special_tokens=False)["input_ids"]
        assert e.labels[n_prompt:] == target_ids == e.input_ids[n_prompt:]
    batch = collate(ex, gen.tokenizer.pad_token_id)
    short = len(ex[0].input_ids)
    assert (batch["labels"][0, short:] == IGNORE).all()
    assert (batch["attention_mask"][0, short:] == 0).all()


def test_loss_counts_target_tokens_only(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=1)
    gen.model.eval()
    ex = build_examples(gen, PROMPTS[:3], TARGETS[:3], 64)
    batch = collate(ex, gen.tokenizer.pad_token_id)
    nll, n = token_nll(gen.model, batch)
    assert n == sum(sum(lab != IGNORE for lab in e.labels) for e in ex)
    # Hand computation, one example at a time, over target positions only.
    manual = 0.0
    for e in ex:
        logp = torch.log_softmax(gen.model(torch.tensor([e.input_ids])).logits[0], -1)
        manual += -sum(logp[i - 1, e.input_ids[i]].item()
                       for i, lab in enumerate(e.labels) if lab != IGNORE)
    assert nll.item() == pytest.approx(manual, rel=1e-4)
    # Different prompts with the same targets and lengths: other prompt tokens, other labels
    # there would change the loss if they counted; padding more does not change it.
    wider = dict(batch)
    pad = torch.full((3, 5), gen.tokenizer.pad_token_id)
    wider["input_ids"] = torch.cat([batch["input_ids"], pad], 1)
    wider["attention_mask"] = torch.cat([batch["attention_mask"], torch.zeros_like(pad)], 1)
    wider["labels"] = torch.cat([batch["labels"], torch.full_like(pad, IGNORE)], 1)
    nll2, n2 = token_nll(gen.model, wider)
    assert n2 == n and nll2.item() == pytest.approx(nll.item(), rel=1e-5)


def test_m_targets_become_m_examples(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = build_examples(gen, ["a", "b"], [["x", "y", "z"], ["w"]], 32)
    assert len(ex) == 4


def test_long_prompt_is_cut_from_the_left(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    (e,) = build_examples(gen, [" ".join(PROMPTS)], [["i like it ."]], 16)
    assert len(e.input_ids) <= 16 and any(lab != IGNORE for lab in e.labels)


def test_bucket_order_is_a_seeded_partition_of_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, 250)
    a = bucket_order(lengths, 8, seed=0, epoch=0, bucket_batches=4)
    assert sorted(np.concatenate(a).tolist()) == list(range(250))
    assert [x.tolist() for x in a] == [x.tolist() for x in bucket_order(lengths, 8, 0, 0, 4)]
    assert [x.tolist() for x in a] != [x.tolist() for x in bucket_order(lengths, 8, 0, 1, 4)]
    spread = np.mean([np.ptp(lengths[b]) for b in a])
    assert spread < np.ptp(lengths) / 2


def test_tiny_run_lowers_the_loss(tmp_path, tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = build_examples(gen, PROMPTS, TARGETS, 48)
    hist = train(gen, ex, train_config(epochs=8, batch_size=8, learning_rate=5e-3), 0,
                 tmp_path / "c")
    assert len(hist) == 8 * 3
    assert np.mean([r["loss"] for r in hist[-3:]]) < 0.5 * np.mean([r["loss"] for r in hist[:3]])
    assert [r["step"] for r in hist] == list(range(1, 25))
    lines = (tmp_path / "c" / LOG_FILE).read_text().splitlines()
    assert [json.loads(x) for x in lines] == hist


class Interrupt(Exception):
    pass


def _fresh(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    return gen, build_examples(gen, PROMPTS, TARGETS, 48)


def test_interrupted_run_resumes_to_identical_weights(tmp_path, tok_dir):
    cfg = train_config(max_steps=7, batch_size=8, learning_rate=5e-3, checkpoint_every=2,
                       warmup_ratio=0.3)
    gen, ex = _fresh(tok_dir)
    assert gen.model.config.resid_pdrop > 0  # dropout on: the RNG state must be restored too
    full = train(gen, ex, cfg, 0, tmp_path / "a", "fp")
    ref = {k: v.clone() for k, v in gen.model.state_dict().items()}

    gen, ex = _fresh(tok_dir)

    def boom(step):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=boom)
    assert [p.name for p in (tmp_path / "b").glob("step-*")] == ["step-00000004"]

    gen, ex = _fresh(tok_dir)
    seen = []
    resumed = train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=seen.append)
    assert seen == [5, 6, 7]  # resumed after the step-4 checkpoint
    assert resumed == full
    for k, v in gen.model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_checkpoint_from_other_settings_is_ignored(tmp_path, tok_dir):
    cfg = train_config(max_steps=4, batch_size=8, checkpoint_every=2)
    gen, ex = _fresh(tok_dir)
    with pytest.raises(Interrupt):
        train(gen, ex, cfg, 0, tmp_path / "c", "old", on_step=lambda s: (_ for _ in ()).throw(
            Interrupt) if s == 3 else None)
    gen, ex = _fresh(tok_dir)
    seen = []
    train(gen, ex, cfg, 0, tmp_path / "c", "new", on_step=seen.append)
    assert seen == [1, 2, 3, 4]


def test_the_seed_argument_fixes_the_run(tmp_path, tok_dir):
    cfg = train_config(max_steps=4, batch_size=8, checkpoint_every=2)
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        gen, ex = _fresh(tok_dir)  # the same initial weights every time
        runs[name] = train(gen, ex, cfg, seed, tmp_path / name)
    assert runs["a"] == runs["b"]
    assert [r["loss"] for r in runs["a"]] != [r["loss"] for r in runs["c"]]


def _targets(tmp_path, rows=PROMPTS):
    df = pd.DataFrame({"id": [f"t{i}" for i in range(len(rows))], "prompt": rows,
                       "response": ["r"] * len(rows), "targets": TARGETS[: len(rows)],
                       "target_ids": [["x"]] * len(rows), "head_shortcut": False})
    df.to_parquet(tmp_path / "targets.parquet")
    return tmp_path / "targets.parquet"


def _job(**train_overrides) -> dict:
    """The --config of a train job: the generator and train slices."""
    return {"generator": TINY_SPEC, "train": {**schema_defaults("train"), **train_overrides}}


def test_cli_writes_model_and_log_and_drops_checkpoints(tmp_path, tok_dir):
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    config = _job(max_steps=3, batch_size=8, checkpoint_every=1)
    main(["--targets", str(_targets(tmp_path)), "--tokenizer", str(tok_dir), "--seed", "0",
          "--config", json.dumps(config), "--checkpoints", str(ck), "--out", str(out)])
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    log = [json.loads(x) for x in (out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and set(log[0]) == {"step", "epoch", "loss", "lr"}
    assert not ck.exists()
    assert not any(p.suffix == ".pkl" for p in out.iterdir())


def test_cli_rejects_targets_without_targets_column(tmp_path, tok_dir):
    pd.DataFrame({"id": ["a"], "prompt": ["p"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="bad.parquet.*targets"):
        main(["--targets", str(tmp_path / "bad.parquet"), "--tokenizer", str(tok_dir),
              "--seed", "0", "--config", json.dumps(_job()),
              "--checkpoints", str(tmp_path / "c"), "--out", str(tmp_path / "o")])


def _drop(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("config, problem", [
    ({"generator": TINY_SPEC}, "--config: missing key(s) train"),
    ({**_job(), "sample": {}}, "--config: unknown key(s) sample"),
    ({**_job(), "train": _drop(schema_defaults("train"), "max_length")},
     "--config.train: missing key(s) max_length"),
    ({**_job(), "train": {**schema_defaults("train"), "seed": 0}},
     "--config.train: unknown key(s) seed"),
    ({**_job(), "generator": {**TINY_SPEC, "tiny": _drop(TINY_SPEC["tiny"], "n_head")}},
     "--config.generator.tiny: missing key(s) n_head"),
])
def test_cli_config_must_have_exactly_its_keys(tmp_path, tok_dir, capsys, config, problem):
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    with pytest.raises(SystemExit) as exit_:
        run(main, ["--targets", str(_targets(tmp_path)), "--tokenizer", str(tok_dir),
                   "--seed", "0", "--config", json.dumps(config),
                   "--checkpoints", str(ck), "--out", str(out)])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists() and not ck.exists()
