"""The workflow under faults, as a user meets them: killed jobs, a killed Snakemake, corrupt
intermediates (docs/reliability.md lists every case and the test that covers it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, copy_of_tiny_run, snakemake
from isaac.io import PRODUCERS, producer

pytestmark = pytest.mark.workflow

TINY = "results/tiny"
RUN = "raw/tau1.0-m1-seed0"
MODEL = f"{TINY}/models/{RUN}"
# Enough steps that the kill lands mid-run, checkpoints often enough that one exists by then.
LONG_TRAINING = "train: {max_steps: 300, checkpoint_every: 10}\n"
SAMPLE_TARGETS = [
    f"{TINY}/targets/{method}/tau1.0-m1-seed0.parquet"
    for method in ("raw", "random", "sft", "isaac", "isaac_paper", "exp", "max")
]
WAIT_S = 600  # a bound on each wait for a job to reach a state, so a hang fails instead


def layered(workdir: Path, layer: str) -> tuple[Path, Path]:
    path = workdir / "layer.yaml"
    path.write_text(layer)
    return TINY_CONFIG, path


def start_snakemake(workdir: Path, *args: str, configfiles) -> subprocess.Popen:
    """Snakemake in its own session (so the test can kill it and its jobs), output to a file."""
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles),
        "--cores",
        "2",
        *args,
    ]
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with (workdir / "snakemake.out").open("w") as sink:
        return subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake exited {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"no {what} within {WAIT_S} s")
        time.sleep(0.05)


def job_processes(proc: subprocess.Popen, module: str) -> list[psutil.Process]:
    """The running `python -m isaac.<module>` jobs under Snakemake."""
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if f"isaac.{module}" in cmdline:
            found.append(child)
    return found


def test_train_killed_mid_run_resumes_from_its_checkpoint_to_the_same_weights(tiny_run, tmp_path):
    """SIGKILL the train job once it has checkpointed, rerun with --rerun-incomplete: the job
    resumes from the checkpoint and ends with the weights of an uninterrupted run (both in
    copies of the tiny run without the model, so that only the train job runs)."""
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    for workdir in (killed, uninterrupted):
        shutil.rmtree(copy_of_tiny_run(tiny_run, workdir) / MODEL)
    layers = layered(killed, LONG_TRAINING)
    checkpoints = killed / TINY / "checkpoints" / RUN

    proc = start_snakemake(killed, MODEL, configfiles=layers)
    wait_for(
        lambda: (
            any(checkpoints.glob("checkpoint-*/isaac_checkpoint.json"))
            and job_processes(proc, "train")
        ),
        proc,
        "train job with a checkpoint",
    )
    for job in job_processes(proc, "train"):
        job.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=WAIT_S) != 0
    assert not (killed / MODEL).exists()
    kept_step = max(
        int(c.name.removeprefix("checkpoint-"))
        for c in checkpoints.glob("checkpoint-*")
        if (c / "isaac_checkpoint.json").is_file()
    )
    assert 0 < kept_step < 300

    snakemake(killed, "--cores", "2", "--rerun-incomplete", MODEL, configfiles=layers)
    log = (killed / "logs" / "tiny" / "train" / f"{RUN}.log").read_text()
    assert f"(step {kept_step})" in log and "resuming from" in log, log

    snakemake(
        uninterrupted, "--cores", "2", MODEL, configfiles=layered(uninterrupted, LONG_TRAINING)
    )
    for name in ("model.safetensors", "train_log.jsonl"):
        assert (killed / MODEL / name).read_bytes() == (uninterrupted / MODEL / name).read_bytes()


def test_snakemake_killed_during_sampling_says_how_to_go_on_and_the_rerun_completes(tmp_path):
    """SIGKILL Snakemake and its jobs while sample jobs run (a lost login session, a killed
    terminal): the next run names the stale lock and --unlock; after it, the run completes."""
    proc = start_snakemake(tmp_path, *SAMPLE_TARGETS, configfiles=(TINY_CONFIG,))
    wait_for(lambda: job_processes(proc, "sample"), proc, "sample job")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT_S)
    assert not all((tmp_path / target).exists() for target in SAMPLE_TARGETS)

    locked = snakemake(tmp_path, "--cores", "2", *SAMPLE_TARGETS, check=False)
    output = locked.stdout + locked.stderr
    assert locked.returncode != 0
    assert "Directory cannot be locked" in output and "--unlock" in output, output

    snakemake(tmp_path, "--unlock", *SAMPLE_TARGETS)
    snakemake(tmp_path, "--cores", "2", "--rerun-incomplete", *SAMPLE_TARGETS)
    again = snakemake(tmp_path, "--dry-run", *SAMPLE_TARGETS)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_producer_table_matches_the_rules_outputs(tmp_path):
    """isaac.io.PRODUCERS names, for every intermediate of the tiny DAG (with tempering rounds,
    and with a sharded embedding), the rule that writes it, and each of its patterns matches
    some output (generator_base exists only for SmolLM2)."""
    outputs = []
    # tempering rounds; a sharded embedding (MiniLM in 2 shards)
    for layer in ("train: {rounds: 2}\n", "embed: {encoder: minilm, shards: 2}\n"):
        proc = snakemake(tmp_path, "--dry-run", "--forceall", configfiles=layered(tmp_path, layer))
        jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    output: (.*)$", proc.stdout, re.M)
        outputs += [(rule, path) for rule, paths in jobs for path in paths.split(", ")]
    assert len(outputs) > 50
    wrong = [
        (path, rule, producer(path)) for rule, path in outputs if producer(path) not in (None, rule)
    ]
    assert not wrong, wrong
    unmatched = [
        pattern
        for pattern, rule in PRODUCERS
        if rule != "generator_base" and not any(Path(path).match(pattern) for _, path in outputs)
    ]
    assert not unmatched, unmatched


# (intermediate, how it is broken, the rule that reads it, that rule's output and log)
CORRUPTIONS = [
    (
        "tokens.parquet",
        "truncated",
        "likelihood",
        "likelihood.parquet",
        "likelihood/likelihood.log",
        "tokenize",
    ),
    (
        "embeddings/tfidf.npz",
        "garbage",
        "neighbours",
        "neighbours/tfidf-k20.parquet",
        "neighbours/tfidf-k20.log",
        "embed",
    ),
    (
        "groups/dbscan.parquet",
        "truncated",
        "sample",
        "targets/isaac/tau1.0-m1-seed0.parquet",
        "sample/isaac/tau1.0-m1-seed0.log",
        "assess",
    ),
    (f"targets/{RUN}.parquet", "garbage", "train", f"models/{RUN}", f"train/{RUN}.log", "sample"),
    (
        f"models/{RUN}/model.safetensors",
        "truncated",
        "generate",
        f"generations/{RUN}.parquet",
        f"generate/{RUN}.log",
        "train",
    ),
]


@pytest.mark.parametrize(
    "broken, how, reader, output, log, maker",
    CORRUPTIONS,
    ids=[case[0].split("/")[0] for case in CORRUPTIONS],
)
def test_a_corrupt_intermediate_stops_its_reader_naming_the_file_and_its_rule(
    tiny_run, tmp_path, broken, how, reader, output, log, maker
):
    """A copy of the tiny run with one intermediate broken; its reader rerun."""
    workdir = copy_of_tiny_run(tiny_run, tmp_path / "run")
    path = workdir / TINY / broken
    data, mtime = path.read_bytes(), path.stat().st_mtime_ns
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\x00garbage\xff" * 40)
    os.utime(path, ns=(mtime, mtime))  # broken in place (a disk fault): no newer than before

    proc = snakemake(workdir, "--cores", "2", f"{TINY}/{output}", "--forcerun", reader, check=False)
    assert proc.returncode != 0
    assert f"Error in rule {reader}" in proc.stdout + proc.stderr
    message = (workdir / "logs" / "tiny" / log).read_text()
    named = broken if reader != "generate" else str(Path(broken).parent)
    assert f"error: {TINY}/{named}: " in message, message
    assert f"it is made by rule {maker}: delete it and rerun" in message, message
    assert "Traceback" not in message, message
    assert not (workdir / TINY / output).exists()
