"""Data-parallel training: 2 CPU processes (gloo) against 1, a rank that dies, bad settings."""

from __future__ import annotations

import json
import signal
import subprocess

import psutil
import pytest

from conftest import settings
from isaac.cli import run
from isaac.io import InputError
from isaac.train import LOG_FILE, MARKER, TrainConfig, check_processes, main
from test_train import command_env, interrupt_after_a_checkpoint, save_tokenizer, train_command

LOSS_TOLERANCE = 0.02  # final losses of 1 and 2 processes: dropout masks differ, nothing else


@pytest.fixture
def tok_dir(tmp_path):
    return save_tokenizer(tmp_path / "tok")


def _log(tmp_path, name):
    text = (tmp_path / "models" / name / LOG_FILE).read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_two_processes_take_the_steps_of_one_and_reach_the_same_loss(tmp_path, tok_dir):
    """The global batch of 8 prompts is split 4 + 4 over two gloo processes: the same optimizer
    steps, the same learning rates, and final losses within LOSS_TOLERANCE."""
    train = dict(max_steps=30, batch_size=8, learning_rate=5e-3, checkpoint_every=1000)
    for name, processes in [("one", 1), ("two", 2)]:
        cmd = train_command(tmp_path, tok_dir, name, 2, processes=processes, **train)
        done = subprocess.run(cmd, env=command_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    one, two = _log(tmp_path, "one"), _log(tmp_path, "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 31))
    assert [r["lr"] for r in one] == pytest.approx([r["lr"] for r in two])
    assert one[0]["loss"] == pytest.approx(two[0]["loss"], rel=LOSS_TOLERANCE)
    final_one = sum(r["loss"] for r in one[-5:]) / 5
    final_two = sum(r["loss"] for r in two[-5:]) / 5
    assert final_two == pytest.approx(final_one, rel=LOSS_TOLERANCE)
    assert final_one < 0.5 * one[0]["loss"]  # and both really trained


def _ranks(launcher: subprocess.Popen) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(launcher.pid).children(recursive=True)
        if "isaac" in " ".join(p.cmdline())
    ]


def test_a_rank_that_dies_ends_the_job_and_the_rerun_resumes(tmp_path, tok_dir):
    """SIGKILL one of two ranks after the first checkpoint: the launcher stops the other, exits
    non-zero and writes no model; the same command then resumes from the checkpoint."""
    cmd = train_command(
        tmp_path, tok_dir, "run", 2, processes=2, max_steps=400, batch_size=8, checkpoint_every=5
    )
    checkpoints = tmp_path / "checkpoints" / "run"
    log = tmp_path / "killed.log"

    def kill_one_rank(launcher):
        ranks = _ranks(launcher)
        assert len(ranks) == 2, log.read_text()
        ranks[1].send_signal(signal.SIGKILL)

    launcher = interrupt_after_a_checkpoint(cmd, checkpoints, log, kill_one_rank)
    output = log.read_text()
    assert launcher.returncode not in (0, None), output
    assert "a training process failed" in output and "Signal 9" in output, output
    assert not (tmp_path / "models" / "run").exists()
    kept = [json.loads(m.read_text())["step"] for m in checkpoints.glob(f"checkpoint-*/{MARKER}")]
    assert kept and max(kept) < 400, output

    done = subprocess.run(cmd, env=command_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(step {max(kept)})" in done.stdout + done.stderr
    assert [r["step"] for r in _log(tmp_path, "run")] == list(range(1, 401))


def test_sigterm_to_the_launcher_stops_both_ranks_at_one_checkpoint(tmp_path, tok_dir):
    """SLURM's time-limit SIGTERM reaches the launcher, which passes it on: both processes
    finish the step, save one checkpoint there, and the job exits 143."""
    cmd = train_command(
        tmp_path, tok_dir, "run", 2, processes=2, max_steps=10**5, batch_size=8, checkpoint_every=50
    )
    checkpoints = tmp_path / "checkpoints" / "run"
    log = tmp_path / "stopped.log"
    launcher = interrupt_after_a_checkpoint(
        cmd, checkpoints, log, lambda p: p.send_signal(signal.SIGTERM)
    )
    output = log.read_text()
    assert launcher.returncode == 143, output
    steps = [json.loads(m.read_text())["step"] for m in checkpoints.glob(f"checkpoint-*/{MARKER}")]
    newest = max(steps)
    assert newest > 50 and newest % 50 != 0, output  # saved where SIGTERM arrived
    assert output.count(f"stopped by SIGTERM at step {newest}") == 2, output  # by both ranks
    assert not (tmp_path / "models" / "run").exists()


@pytest.mark.parametrize(
    "train, threads, problem",
    [
        (dict(processes=64), 64, "train.processes is 64 but this machine has"),
        (dict(processes=2), 1, "train.processes is 2 but the job has 1 threads"),
        (dict(processes=2, batch_size=7), 2, "must be a multiple of"),
        (dict(fsdp=True), 1, "it needs processes >= 2"),
        (dict(precision="bf16"), 1, "no CUDA device with bfloat16"),
    ],
)
def test_process_settings_the_machine_cannot_run_are_refused_before_training(
    tmp_path, tok_dir, capsys, train, threads, problem
):
    cmd = train_command(tmp_path, tok_dir, "run", threads, max_steps=2, **train)
    with pytest.raises(SystemExit) as exit_:
        run(main, cmd[3:])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "models").exists()


def test_fsdp_is_for_full_fine_tuning():
    config = settings(TrainConfig, "train", processes=2, fsdp=True)
    with pytest.raises(InputError, match="train.fsdp is for full fine-tuning"):
        check_processes(config, threads=2, lora=True)
    check_processes(config, threads=2, lora=False)
