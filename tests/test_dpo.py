"""DPO on preference pairs: the loss, one step that lowers it, the reference, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict

import pandas as pd
import pytest
import torch

from conftest import schema_defaults
from isaac import dpo
from isaac.cli import run
from isaac.io import InputError
from isaac.lm import build_examples, collate, sequence_logps, token_nll
from isaac.models import build_generator, load_generator, save_generator
from isaac.train import LOG_FILE, train
from test_train import (
    PROMPTS,
    TARGETS,
    TINY,
    _job,
    command_env,
    save_tokenizer,
    train_config,
)

CHOSEN = [[t[0]] for t in TARGETS]
REJECTED = [[f"no . {p.split()[5]} are bad ."] for p in PROMPTS]


@pytest.fixture
def tok_dir(tmp_path):
    return save_tokenizer(tmp_path / "tok")


def test_the_loss_is_log_2_at_the_reference_and_falls_as_the_margin_grows():
    reference = torch.tensor([-3.0, -5.0, -2.0, -2.0])  # two groups of m = 1: chosen, rejected
    at_reference = dpo.dpo_loss(reference, reference, m=1, beta=0.1)
    assert torch.allclose(at_reference, torch.full((2, 1), math.log(2.0)))
    wider = reference + torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert (dpo.dpo_loss(wider, reference, m=1, beta=0.1) < at_reference).all()
    # pairs are (chosen j, rejected j) of a group, m = 2
    logps = torch.tensor([0.0, 0.0, -10.0, 0.0])
    loss = dpo.dpo_loss(logps, torch.zeros(4), m=2, beta=1.0)
    assert torch.allclose(
        loss, torch.tensor([[-torch.nn.functional.logsigmoid(torch.tensor(10.0)), math.log(2.0)]])
    )


def test_sequence_logps_sum_to_the_token_nll(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    gen.model.eval()
    groups = dpo.pair_examples(gen, PROMPTS[:6], CHOSEN[:6], REJECTED[:6], 48)
    batch = collate([e for g in groups for e in g], gen.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = gen.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        nll, _ = token_nll(gen.model, batch)
    logps = sequence_logps(logits.logits, batch["labels"])
    assert logps.shape == (12,) and (logps < 0).all()
    assert torch.allclose(-logps.sum(), nll, rtol=1e-5)


def batch_loss(gen, groups, objective) -> float:
    """The DPO loss of the model on these groups, as PairTrainer computes it."""
    batch = collate([e for g in groups for e in g], gen.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = gen.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logps = sequence_logps(logits.logits, batch["labels"])
    reference = objective.fields(groups)["reference_logps"]
    return float(dpo.dpo_loss(logps, reference, objective.m, objective.beta).mean())


def test_one_dpo_step_lowers_the_dpo_loss_on_its_batch(tmp_path, tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    dpo.without_dropout(gen.model)
    sft = build_examples(gen, PROMPTS, TARGETS, 48)  # a start that can tell the two apart
    train(gen, sft, train_config(max_steps=6, batch_size=8), 0, tmp_path / "s")
    groups = dpo.reference_logps(gen, dpo.pair_examples(gen, PROMPTS[:8], CHOSEN, REJECTED, 48), 8)
    objective = dpo.PairObjective(beta=0.5, m=1, seq2seq=False)
    before = batch_loss(gen, groups, objective)
    assert before == pytest.approx(math.log(2.0), abs=1e-5)  # the reference is the model itself
    cfg = train_config(max_steps=1, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0)
    history = train(gen, groups, cfg, 0, tmp_path / "d", objective=objective)
    assert len(history) == 1 and history[0]["loss"] == pytest.approx(before, abs=1e-4)
    assert batch_loss(gen, groups, objective) < before


def test_read_pairs_refuses_rows_of_unequal_pairs(tmp_path):
    path = tmp_path / "pairs.parquet"
    table = pd.DataFrame(
        {"id": ["a", "b"], "prompt": ["p", "q"], "chosen": [["x"], ["y"]], "rejected": [["z"], []]}
    )
    table.to_parquet(path)
    with pytest.raises(InputError, match=r"row 1 \('b'\) does not hold the 1 chosen"):
        dpo.read_pairs(path)


def write_start_and_pairs(tmp_path, tok_dir, start_model=None):
    """The start model (the raw run's, here untrained: the tiny generator unless given) and a
    pairs table of the test prompts."""
    start = tmp_path / "raw"
    save_generator(start_model or build_generator(TINY, tok_dir, seed=0), start)
    pairs = tmp_path / "pairs.parquet"
    pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(PROMPTS))],
            "prompt": PROMPTS,
            "chosen": CHOSEN,
            "rejected": REJECTED,
        }
    ).to_parquet(pairs)
    return start, pairs


def test_cli_trains_from_the_start_model_and_the_same_seed_gives_the_same_weights(
    tmp_path, tok_dir
):
    start, pairs = write_start_and_pairs(tmp_path, tok_dir)
    section = json.dumps(schema_defaults("dpo"))

    def cli(name):
        out = tmp_path / name
        args = ["--pairs", str(pairs), "--init", str(start), "--dpo", section, "--seed", "0"]
        args += [*_job(max_steps=3, batch_size=8), "--checkpoints", str(tmp_path / "ck" / name)]
        run(dpo.main, [*args, "--out", str(out)])
        return out

    first, second = cli("a"), cli("b")
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    log = [json.loads(line) for line in (first / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and log[0]["loss"] == pytest.approx(
        math.log(2.0), abs=0.05
    )
    moved = load_generator(first).model.state_dict()
    kept = load_generator(start).model.state_dict()
    assert any(not torch.equal(moved[k], kept[k]) for k in kept)
    with pytest.raises(SystemExit):  # a dpo section without its beta
        args = ["--pairs", str(pairs), "--init", str(start), "--dpo", "{}", "--seed", "0"]
        run(dpo.main, [*args, *_job(), "--checkpoints", "x", "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


def test_two_processes_take_the_steps_of_one_and_reach_the_same_loss(tmp_path, tok_dir):
    """The global batch of 8 pairs is split 4 + 4 over two gloo processes, each having computed
    the reference log-probabilities of every pair: the same steps and learning rates, and the
    same DPO loss at every step up to float summation order (no dropout in DPO)."""
    start, pairs = write_start_and_pairs(tmp_path, tok_dir)
    logs = {}
    for name, processes in [("one", 1), ("two", 2)]:
        out = tmp_path / name
        cmd = [sys.executable, "-m", "isaac.dpo", "--pairs", str(pairs), "--init", str(start)]
        cmd += ["--dpo", json.dumps(schema_defaults("dpo")), "--seed", "0"]
        cmd += _job(max_steps=12, batch_size=8, learning_rate=5e-3, processes=processes)
        cmd += ["--threads", "2", "--checkpoints", str(tmp_path / "ck" / name), "--out", str(out)]
        done = subprocess.run(cmd, env=command_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        logs[name] = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    one, two = logs["one"], logs["two"]
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 13))
    assert [r["lr"] for r in one] == pytest.approx([r["lr"] for r in two])
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    assert one[-1]["loss"] < one[0]["loss"]  # and both really trained


def test_dpo_with_lora_trains_only_the_adapters_of_a_llama_checkpoint(tmp_path, tok_dir):
    """generator.lora as SmolLM2 trains (a Llama architecture): fresh adapters on the merged
    start model, so the first loss is log 2; the saved model is merged, and only its linear
    projections (where the adapters sit) moved: embeddings and norms are those of the start."""
    from test_models import _local_llama, generator

    llama = _local_llama(tmp_path / "llama", tok_dir)
    config = generator(model=str(llama), lora=True, lora_r=2, lora_alpha=4)
    start, pairs = write_start_and_pairs(tmp_path, tok_dir, build_generator(config, None, seed=0))
    out = tmp_path / "dpo"
    args = ["--pairs", str(pairs), "--init", str(start), "--seed", "0"]
    args += ["--dpo", json.dumps(schema_defaults("dpo"))]
    args += [*_job(max_steps=3, batch_size=8, learning_rate=5e-2)]
    args[args.index("--generator") + 1] = json.dumps(asdict(config))
    run(dpo.main, [*args, "--checkpoints", str(tmp_path / "ck"), "--out", str(out)])
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(math.log(2.0), abs=1e-6)
    trained, kept = load_generator(out).model, load_generator(start).model
    assert not hasattr(trained, "peft_config")
    after, before = trained.state_dict(), kept.state_dict()
    moved = {k for k in before if not torch.equal(after[k], before[k])}
    assert moved == {k for k in before if k.endswith("_proj.weight")}
