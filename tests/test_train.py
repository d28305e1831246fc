"""Training: target-only loss, bucketing, a loss that falls, checkpoints and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import schema_defaults, settings
from isaac.cli import run
from isaac.generator_tokenizer import train_tokenizer
from isaac.io import InputError
from isaac.lm import IGNORE, build_examples, collate, prompt_ids, token_nll
from isaac.models import GeneratorConfig, build_generator, load_generator
from isaac.settings import from_dict
from isaac.train import (
    LOG_FILE,
    MARKER,
    TERMINATED_EXIT,
    Terminated,
    TrainConfig,
    bucket_order,
    main,
    train,
)

PROMPTS = [f"what do you think about {w} today ?" for w in ["cats", "dogs", "rain", "food"] * 6]
TARGETS = [[f"i like {p.split()[5]} a lot ."] for p in PROMPTS]
TINY_SPEC = {
    **schema_defaults("generator"),
    "model": "tiny-gpt2",
    "tiny": {**schema_defaults("generator")["tiny"], "n_layer": 1, "n_head": 2, "n_embd": 32},
}
TINY = from_dict(GeneratorConfig, TINY_SPEC)


def train_config(**overrides) -> TrainConfig:
    return settings(TrainConfig, "train", **overrides)


def save_tokenizer(folder):
    """The tiny generator's tokenizer fitted on the test prompts and targets, saved to folder."""
    train_tokenizer(PROMPTS + [t[0] for t in TARGETS], 300).save_pretrained(str(folder))
    return folder


@pytest.fixture
def tok_dir(tmp_path):
    return save_tokenizer(tmp_path / "tok")


def _flat(groups):
    return [e for group in groups for e in group]


def test_prompt_and_padding_carry_no_labels(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = _flat(
        build_examples(
            gen,
            ["hello", "what do you think about cats today ?"],
            [["hi ."], ["i like cats a lot ."]],
            64,
        )
    )
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
    ex = _flat(build_examples(gen, PROMPTS[:3], TARGETS[:3], 64))
    batch = collate(ex, gen.tokenizer.pad_token_id)
    nll, n = token_nll(gen.model, batch)
    assert n == sum(sum(lab != IGNORE for lab in e.labels) for e in ex)
    # Hand computation, one example at a time, over target positions only.
    manual = 0.0
    for e in ex:
        logp = torch.log_softmax(gen.model(torch.tensor([e.input_ids])).logits[0], -1)
        manual += -sum(
            logp[i - 1, e.input_ids[i]].item() for i, lab in enumerate(e.labels) if lab != IGNORE
        )
    assert nll.item() == pytest.approx(manual, rel=1e-4)


def test_padding_beside_a_longer_batch_mate_adds_nothing(tok_dir):
    """An example padded to a longer batch-mate's length keeps exactly its unpadded loss: its
    own target labels stay, every position beyond its length is -100 and masked."""
    gen = build_generator(TINY, tok_dir, seed=1)
    gen.model.eval()
    pad = gen.tokenizer.pad_token_id
    (short,), (long,) = build_examples(
        gen,
        ["hello", "what do you think about cats today ? and dogs ?"],
        [["hi ."], ["i like cats a lot . and dogs a lot more than rain ."]],
        64,
    )
    n_short, width = len(short.input_ids), len(long.input_ids)
    assert width > n_short + 5  # real padding, over positions that held labels in the mate
    batch = collate([short, long], pad)
    assert batch["input_ids"].shape == (2, width)
    row = {k: v[:1] for k, v in batch.items()}  # the short example, padded to `width`
    assert row["labels"][0, :n_short].tolist() == short.labels  # its target labels are kept
    assert any(lab != IGNORE for lab in short.labels)
    assert (row["labels"][0, n_short:] == IGNORE).all()  # nothing beyond its length is scored
    assert (row["attention_mask"][0, n_short:] == 0).all()
    assert (row["input_ids"][0, n_short:] == pad).all()
    # the mate labels those columns: the padded columns are not ignored "anyway"
    assert (batch["labels"][1, n_short:] != IGNORE).any()

    alone = collate([short], pad)
    assert alone["input_ids"].shape == (1, n_short)
    nll_alone, count_alone = token_nll(gen.model, alone)
    nll_padded, count_padded = token_nll(gen.model, row)
    assert count_padded == count_alone == sum(lab != IGNORE for lab in short.labels)
    assert nll_padded.item() == pytest.approx(nll_alone.item(), rel=1e-5)
    # and the whole batch is the sum of its examples taken alone
    nll_long, count_long = token_nll(gen.model, collate([long], pad))
    nll_both, count_both = token_nll(gen.model, batch)
    assert count_both == count_alone + count_long
    assert nll_both.item() == pytest.approx(nll_alone.item() + nll_long.item(), rel=1e-5)


def test_m_targets_become_one_group_per_prompt(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = build_examples(gen, ["a", "b"], [["x", "y", "z"], ["w"]], 32)
    assert [len(group) for group in ex] == [3, 1]
    prompt_a = gen.tokenizer(gen.fmt.prompt_text("a"), add_special_tokens=False)["input_ids"]
    for e, t in zip(ex[0], ["x", "y", "z"]):
        assert e.input_ids[: len(prompt_a)] == prompt_a
        assert (
            e.labels[len(prompt_a) :]
            == gen.tokenizer(t + gen.fmt.target_suffix, add_special_tokens=False)["input_ids"]
        )


def test_prompt_keeps_its_last_tokens_and_the_target_fills_the_rest(tok_dir):
    budget = 8
    gen = build_generator(replace(TINY, max_prompt_tokens=budget), tok_dir, seed=0)
    assert gen.fmt.max_prompt_tokens == budget
    prompt, target = " ".join(PROMPTS), " ".join(t[0] for t in TARGETS)
    full = gen.tokenizer(gen.fmt.prompt_text(prompt), add_special_tokens=False)["input_ids"]
    t_full = gen.tokenizer(gen.fmt.target_text(target), add_special_tokens=False)["input_ids"]
    assert len(full) > budget and len(t_full) > 40
    assert prompt_ids(gen, prompt) == full[-budget:]  # the end of the context (and separator)
    ((e,),) = build_examples(gen, [prompt], [[target]], 48)
    assert e.input_ids[:budget] == full[-budget:]
    assert e.labels[:budget] == [IGNORE] * budget
    assert e.input_ids[budget:] == e.labels[budget:] == t_full[: 48 - budget]
    assert len(e.input_ids) == 48
    # a short prompt is not cut, and a short target is whole (its end marker included)
    ((s,),) = build_examples(gen, ["hi"], [["i like it ."]], 48)
    short_prompt = gen.tokenizer(gen.fmt.prompt_text("hi"), add_special_tokens=False)["input_ids"]
    assert len(short_prompt) < budget and s.input_ids[: len(short_prompt)] == short_prompt
    assert s.labels[-1] == gen.tokenizer.eos_token_id


def test_a_prompt_budget_that_leaves_no_room_is_a_clear_error(tok_dir):
    gen = build_generator(replace(TINY, max_prompt_tokens=16), tok_dir, seed=0)
    with pytest.raises(InputError, match="max_prompt_tokens.*max_length"):
        build_examples(gen, [" ".join(PROMPTS)], [["i like it ."]], 16)
    # the same budget fits a longer max_length
    ((e,),) = build_examples(gen, [" ".join(PROMPTS)], [["i like it ."]], 17)
    assert sum(lab != IGNORE for lab in e.labels) == 1


def test_bucket_order_is_a_seeded_partition_of_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, 250)
    a = bucket_order(lengths, 8, seed=0, epoch=0, bucket_batches=4)
    assert {len(b) for b in a} == {8} and len(a) == 32  # ceil(250 / 8) full batches
    drawn = np.concatenate(a)
    assert set(drawn.tolist()) == set(range(250))  # every example once, 6 of them twice
    first = np.random.default_rng([0, 0]).permutation(250)[:6]  # the epoch's first examples
    assert sorted(np.flatnonzero(np.bincount(drawn) == 2).tolist()) == sorted(first.tolist())
    assert [x.tolist() for x in a] == [x.tolist() for x in bucket_order(lengths, 8, 0, 0, 4)]
    assert [x.tolist() for x in a] != [x.tolist() for x in bucket_order(lengths, 8, 0, 1, 4)]
    spread = np.mean([np.ptp(lengths[b]) for b in a])
    assert spread < np.ptp(lengths) / 2


def test_tiny_run_lowers_the_loss(tmp_path, tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    ex = build_examples(gen, PROMPTS, TARGETS, 48)
    hist = train(
        gen, ex, train_config(epochs=8, batch_size=8, learning_rate=5e-3), 0, tmp_path / "c"
    )
    assert len(hist) == 8 * 3
    assert np.mean([r["loss"] for r in hist[-3:]]) < 0.5 * np.mean([r["loss"] for r in hist[:3]])
    assert [r["step"] for r in hist] == list(range(1, 25))


def _no_dropout(gen):
    for module in gen.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return gen


M3_TARGETS = [[t[0], f"{t[0]} really", "no ."] for t in TARGETS]


@pytest.mark.parametrize("epochs, batch_size, n_prompts", [(2, 8, 24), (3, 5, 17), (1, 32, 24)])
def test_equal_budgets_whatever_m(tmp_path, tok_dir, epochs, batch_size, n_prompts):
    """m = 1 and m = 3 targets per prompt take the same number of optimizer steps:
    ceil(n_prompts / batch_size) per epoch (docs/training.md)."""
    cfg = train_config(epochs=epochs, batch_size=batch_size, learning_rate=5e-3)
    steps = {}
    for m, targets in [(1, TARGETS), (3, M3_TARGETS)]:
        gen = build_generator(TINY, tok_dir, seed=0)
        groups = build_examples(gen, PROMPTS[:n_prompts], targets[:n_prompts], 48)
        assert len(groups) == n_prompts and {len(g) for g in groups} == {m}
        hist = train(gen, groups, cfg, 0, tmp_path / f"m{m}")
        steps[m] = len(hist)
        assert [r["epoch"] for r in hist] == [
            e for e in range(epochs) for _ in range(-(-n_prompts // batch_size))
        ]
    assert steps[1] == steps[3] == epochs * -(-n_prompts // batch_size)


def test_a_group_loss_is_the_token_mean_over_its_sequences(tmp_path, tok_dir):
    """Three copies of every target train exactly like one: the loss is the mean over all
    target tokens of the batch (a sum, or a mean per sequence summed, would differ)."""
    cfg = train_config(max_steps=4, batch_size=8, learning_rate=5e-3)
    hist = {}
    for m in (1, 3):
        gen = _no_dropout(build_generator(TINY, tok_dir, seed=0))
        groups = build_examples(gen, PROMPTS, [t * m for t in TARGETS], 48)
        hist[m] = train(gen, groups, cfg, 0, tmp_path / f"m{m}")
    assert [r["step"] for r in hist[1]] == [r["step"] for r in hist[3]] == [1, 2, 3, 4]
    for one, three in zip(hist[1], hist[3]):
        assert three["loss"] == pytest.approx(one["loss"], abs=2e-5)

    # Targets of different lengths: the logged loss of a one-batch step is the token mean over
    # every sequence of the batch, not the mean of per-sequence (or per-group) means.
    targets = [
        ["hi .", "i like cats a lot . really a lot ."],
        ["no ."],
        ["i like dogs a lot .", "ok", "why ?"],
    ]
    gen = _no_dropout(build_generator(TINY, tok_dir, seed=0))
    gen.model.eval()
    with torch.no_grad():
        gen.model.transformer.wte.weight.mul_(20)  # token NLLs far apart: the means differ
    groups = build_examples(gen, PROMPTS[:3], targets, 48)
    parts = [token_nll(gen.model, collate([e], gen.tokenizer.pad_token_id)) for e in _flat(groups)]
    token_mean = sum(x.item() for x, _ in parts) / sum(c for _, c in parts)
    sequence_mean = float(np.mean([x.item() / c for x, c in parts]))
    assert abs(token_mean - sequence_mean) > 0.1
    (record,) = train(gen, groups, train_config(max_steps=1, batch_size=3), 0, tmp_path / "one")
    assert record["loss"] == pytest.approx(token_mean, abs=2e-6)


def test_train_refuses_a_prompt_without_targets(tmp_path, tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    groups = build_examples(gen, PROMPTS[:2], [TARGETS[0], []], 48)
    with pytest.raises(InputError, match="without targets"):
        train(gen, groups, train_config(max_steps=1), 0, tmp_path / "c")
    with pytest.raises(InputError, match="no training examples"):
        train(gen, [], train_config(max_steps=1), 0, tmp_path / "c")


class Interrupt(Exception):
    pass


def _fresh(tok_dir):
    gen = build_generator(TINY, tok_dir, seed=0)
    return gen, build_examples(gen, PROMPTS, TARGETS, 48)


def test_interrupted_run_resumes_to_identical_weights(tmp_path, tok_dir):
    cfg = train_config(
        max_steps=7, batch_size=8, learning_rate=5e-3, checkpoint_every=2, warmup_ratio=0.3
    )
    gen, ex = _fresh(tok_dir)
    assert gen.model.config.resid_pdrop > 0  # dropout on: the RNG state must be restored too
    full = train(gen, ex, cfg, 0, tmp_path / "a", "fp")
    ref = {k: v.clone() for k, v in gen.model.state_dict().items()}

    gen, ex = _fresh(tok_dir)

    def boom(step):
        if step == 5:
            raise Interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupt):
        train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=boom)
    assert signal.getsignal(signal.SIGTERM) == before  # restored after a failure too
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]

    gen, ex = _fresh(tok_dir)
    seen = []
    resumed = train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=seen.append)
    assert seen == [5, 6, 7]  # resumed after the step-4 checkpoint
    assert resumed == full
    for k, v in gen.model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_sigterm_saves_a_checkpoint_at_the_current_step_and_resumes_from_it(tmp_path, tok_dir):
    """SLURM sends SIGTERM at a job's time limit: the step in progress finishes, a checkpoint
    is saved at it (not at the last checkpoint_every multiple) and training stops."""
    cfg = train_config(max_steps=7, batch_size=8, learning_rate=5e-3, checkpoint_every=4)
    gen, ex = _fresh(tok_dir)
    full = train(gen, ex, cfg, 0, tmp_path / "a", "fp")
    ref = {k: v.clone() for k, v in gen.model.state_dict().items()}

    def sigterm_at_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    gen, ex = _fresh(tok_dir)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as stop:
        train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=sigterm_at_3)
    assert stop.value.step == 3
    assert [p.name for p in (tmp_path / "b").glob("checkpoint-*")] == ["checkpoint-3"]
    assert not list((tmp_path / "b").rglob("*.bin"))  # no pickled training arguments
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again

    gen, ex = _fresh(tok_dir)
    seen = []
    assert train(gen, ex, cfg, 0, tmp_path / "b", "fp", on_step=seen.append) == full
    assert seen == [4, 5, 6, 7]
    for k, v in gen.model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def train_command(tmp_path, tok_dir, name="run", threads=1, **train) -> list[str]:
    """The train command as a train job runs it, on the test targets."""
    return [
        sys.executable,
        "-m",
        "isaac.train",
        "--targets",
        str(_targets(tmp_path)),
        "--tokenizer",
        str(tok_dir),
        "--seed",
        "0",
        *_job(**train),
        "--threads",
        str(threads),
        "--checkpoints",
        str(tmp_path / "checkpoints" / name),
        "--out",
        str(tmp_path / "models" / name),
    ]


def command_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def interrupt_after_a_checkpoint(cmd, checkpoints, log, interrupt) -> subprocess.Popen:
    """Start `cmd`, call interrupt(process) once a complete checkpoint exists, wait for it."""
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, env=command_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        while proc.poll() is None and not list(checkpoints.glob(f"checkpoint-*/{MARKER}")):
            time.sleep(0.05)
        interrupt(proc)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    return proc


def test_cli_on_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path, tok_dir):
    """The train command as a SLURM job runs it: SIGTERM mid-run leaves a checkpoint newer
    than the last periodic one, no model, and exit status 143."""
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    cmd = train_command(tmp_path, tok_dir, max_steps=10**6, batch_size=8, checkpoint_every=1000)
    log = tmp_path / "train.log"
    proc = interrupt_after_a_checkpoint(
        cmd, ck, log, lambda p: p.send_signal(signal.SIGTERM)
    )  # after the first periodic checkpoint (step 1000)
    output = log.read_text()
    assert proc.returncode == TERMINATED_EXIT, output
    ckpt = max(ck.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    step = json.loads((ckpt / MARKER).read_text())["step"]
    assert step > 1000 and step % 1000 != 0, output  # saved where SIGTERM arrived
    assert f"stopped by SIGTERM at step {step}" in output
    assert not out.exists()


def test_checkpoint_from_other_settings_is_ignored(tmp_path, tok_dir):
    cfg = train_config(max_steps=4, batch_size=8, checkpoint_every=2)
    gen, ex = _fresh(tok_dir)
    with pytest.raises(Interrupt):
        train(
            gen,
            ex,
            cfg,
            0,
            tmp_path / "c",
            "old",
            on_step=lambda s: (_ for _ in ()).throw(Interrupt) if s == 3 else None,
        )
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
    df = pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(rows))],
            "prompt": rows,
            "response": ["r"] * len(rows),
            "targets": TARGETS[: len(rows)],
            "target_ids": [["x"]] * len(rows),
            "head_shortcut": False,
        }
    )
    df.to_parquet(tmp_path / "targets.parquet")
    return tmp_path / "targets.parquet"


def _job(**train_overrides) -> list[str]:
    """The settings arguments of a train job: --config, the train section (without the round
    count, which decides which jobs run), and --generator, the generator section."""
    train = {k: v for k, v in schema_defaults("train").items() if k != "rounds"}
    return [
        "--config",
        json.dumps({**train, **train_overrides}),
        "--generator",
        json.dumps(TINY_SPEC),
    ]


def test_cli_writes_model_and_log_and_drops_checkpoints(tmp_path, tok_dir):
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    config = _job(max_steps=3, batch_size=8, checkpoint_every=1)
    main(
        [
            "--targets",
            str(_targets(tmp_path)),
            "--tokenizer",
            str(tok_dir),
            "--seed",
            "0",
            *config,
            "--checkpoints",
            str(ck),
            "--out",
            str(out),
        ]
    )
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    log = [json.loads(x) for x in (out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and set(log[0]) == {
        "step",
        "epoch",
        "loss",
        "lr",
        "tokens",
    }
    assert not ck.exists()
    assert not any(p.suffix == ".pkl" for p in out.iterdir())


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: room for a tokenizer, not for the model's weights (needs root)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({proc.stderr.strip()}); tests/test_io.py "
            "covers a full disk with RLIMIT_FSIZE and a patched write"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_cli_on_a_full_disk_says_so_and_leaves_no_model_folder(
    tmp_path, tok_dir, small_disk, capsys
):
    out, ck = small_disk / "models" / "run", tmp_path / "checkpoints" / "run"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "--targets",
                str(_targets(tmp_path)),
                "--tokenizer",
                str(tok_dir),
                "--seed",
                "0",
                *_job(max_steps=2, batch_size=8),
                "--checkpoints",
                str(ck),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 1
    assert f"error: {out}: no space left while writing it" in capsys.readouterr().err
    assert list((small_disk / "models").iterdir()) == []  # no half-written model folder
    assert ck.is_dir()  # the checkpoint folder is kept for the next try


def test_a_round_starts_from_the_previous_round_model(tmp_path, tok_dir):
    """Tempering: --init continues training a saved model instead of a fresh one."""
    targets = _targets(tmp_path)
    config = _job(max_steps=3, batch_size=8)

    def job(name, *extra):
        out = tmp_path / "models" / name
        main(
            [
                "--targets",
                str(targets),
                "--tokenizer",
                str(tok_dir),
                "--seed",
                "0",
                *extra,
                *config,
                "--checkpoints",
                str(tmp_path / "ck" / name),
                "--out",
                str(out),
            ]
        )
        return out

    round1 = job("round1")
    round2 = job("round2", "--init", str(round1))
    fresh = job("fresh")
    weights = {p.name: load_generator(p).model.state_dict() for p in (round1, round2, fresh)}
    key = next(iter(weights["round1"]))
    assert torch.equal(weights["round1"][key], weights["fresh"][key])  # same seed, same data
    assert not torch.equal(weights["round2"][key], weights["round1"][key])  # trained further
    log1 = [json.loads(x) for x in (round1 / LOG_FILE).read_text().splitlines()]
    log2 = [json.loads(x) for x in (round2 / LOG_FILE).read_text().splitlines()]
    assert log2[0]["loss"] < log1[0]["loss"]  # it starts where round 1 ended, not from scratch
    assert load_generator(round2).fmt == load_generator(round1).fmt


def test_cli_rejects_targets_without_targets_column(tmp_path, tok_dir):
    pd.DataFrame({"id": ["a"], "prompt": ["p"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="bad.parquet.*targets"):
        main(
            [
                "--targets",
                str(tmp_path / "bad.parquet"),
                "--tokenizer",
                str(tok_dir),
                "--seed",
                "0",
                *_job(),
                "--checkpoints",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "o"),
            ]
        )


@pytest.mark.parametrize("empty", [[], None])
def test_cli_refuses_a_row_without_targets(tmp_path, tok_dir, capsys, empty):
    path = _targets(tmp_path, PROMPTS[:3])
    df = pd.read_parquet(path)
    df["targets"] = [TARGETS[0], empty, TARGETS[2]]
    df.to_parquet(path)
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    with pytest.raises(SystemExit) as exit_:
        run(
            main,
            [
                "--targets",
                str(path),
                "--tokenizer",
                str(tok_dir),
                "--seed",
                "0",
                *_job(max_steps=1),
                "--checkpoints",
                str(ck),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 2
    assert "targets.parquet: row 1 ('t1') has no targets" in capsys.readouterr().err
    assert not out.exists() and not ck.exists()


def _drop(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


TRAIN = {k: v for k, v in schema_defaults("train").items() if k != "rounds"}


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"config": {**TRAIN, "sample": {}}}, "--config: unknown key(s) sample"),
        ({"config": _drop(TRAIN, "epochs")}, "--config: missing key(s) epochs"),
        ({"config": {**TRAIN, "max_length": 96}}, "--config: unknown key(s) max_length"),
        ({"config": schema_defaults("train")}, "--config: unknown key(s) rounds"),
        ({"generator": _drop(TINY_SPEC, "max_length")}, "--generator: missing key(s) max_length"),
        (
            {"generator": {**TINY_SPEC, "tiny": _drop(TINY_SPEC["tiny"], "n_head")}},
            "--generator.tiny: missing key(s) n_head",
        ),
    ],
)
def test_cli_config_must_have_exactly_its_keys(tmp_path, tok_dir, capsys, config, problem):
    out, ck = tmp_path / "models" / "run", tmp_path / "checkpoints" / "run"
    with pytest.raises(SystemExit) as exit_:
        settings_args = {"config": TRAIN, "generator": TINY_SPEC, **config}
        run(
            main,
            [
                "--targets",
                str(_targets(tmp_path)),
                "--tokenizer",
                str(tok_dir),
                "--seed",
                "0",
                "--config",
                json.dumps(settings_args["config"]),
                "--generator",
                json.dumps(settings_args["generator"]),
                "--checkpoints",
                str(ck),
                "--out",
                str(out),
            ],
        )
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists() and not ck.exists()


@pytest.mark.parametrize("memory", [{"gradient_accumulation": 4}, {"gradient_checkpointing": True}])
def test_accumulation_and_checkpointing_change_memory_not_the_steps(tmp_path, tok_dir, memory):
    """A step of 8 prompts as 4 micro-batches of 2, or with activations recomputed, takes the
    same steps to the same losses and weights (no dropout: nothing random is left)."""
    runs = {}
    for name, extra in [("plain", {}), ("memory", memory)]:
        gen, ex = _fresh(tok_dir)
        _no_dropout(gen)
        cfg = train_config(max_steps=6, batch_size=8, learning_rate=5e-3, **extra)
        runs[name] = (train(gen, ex, cfg, 0, tmp_path / name), gen.model.state_dict())
    (plain, weights), (other, other_weights) = runs["plain"], runs["memory"]
    assert [r["step"] for r in other] == [r["step"] for r in plain] == list(range(1, 7))
    assert [r["tokens"] for r in other] == [r["tokens"] for r in plain]
    assert [r["loss"] for r in other] == pytest.approx([r["loss"] for r in plain], abs=1e-4)
    for name, value in weights.items():
        assert torch.allclose(other_weights[name], value, atol=1e-4), name
