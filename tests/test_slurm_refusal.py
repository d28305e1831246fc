"""A run through profiles/slurm with no SLURM controller to answer, or without SLURM's tools,
stops before its first submission in one line naming the cause, exit status 2 and no results.

No daemon is started or stopped here (tests/test_slurm.py owns the test cluster): the missing
controller is a slurm.conf whose controller port nothing listens on (read by the real scontrol,
which the run without a controller needs: it skips with the reason where SLURM's tools are not
installed, except under CI), the missing tools a PATH without them, and the answers of
`scontrol ping` come from stand-in scripts."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from conftest import REPO, SNAKEMAKE, property_settings, slurm_unavailable, snakemake
from isaac.workflow_config import ping_failure, refuse_without_slurm_controller

PROFILE = str(REPO / "profiles" / "slurm")
HINT = "start slurmctld or run without --profile profiles/slurm"
TARGET = "results/tiny/corpus.parquet"

PROPERTY = property_settings(HealthCheck.too_slow)


def stand_in_scontrol(folder, script: str) -> str:
    """A PATH whose only scontrol is a script with this body (POSIX sh)."""
    folder.mkdir()
    scontrol = folder / "scontrol"
    scontrol.write_text(f"#!/bin/sh\n{script}\n")
    scontrol.chmod(0o755)
    return str(folder)


def refusal(capsys, **kwargs) -> str:
    """The one line refuse_without_slurm_controller prints as it exits with status 2."""
    with pytest.raises(SystemExit) as stopped:
        refuse_without_slurm_controller(**kwargs)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    return line


@pytest.mark.parametrize(
    "said",
    [
        "echo 'Slurmctld(primary) at head is UP'",
        # the backup's DOWN makes the exit status 1 although the primary answers
        "echo 'Slurmctld(primary) at head is UP'; echo 'Slurmctld(backup) at spare is DOWN';"
        " exit 1",
    ],
)
def test_a_controller_that_answers_passes(tmp_path, monkeypatch, capsys, said):
    monkeypatch.setenv("PATH", stand_in_scontrol(tmp_path / "bin", said))
    assert refuse_without_slurm_controller() is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "said, cause",
    [
        (
            "echo 'Slurmctld(primary) at head is DOWN'; echo '*** RESTORE ***'; exit 1",
            "Slurmctld(primary) at head is DOWN",
        ),
        (
            "echo 'scontrol: error: ClusterName needs to be specified' >&2;"
            " echo 'scontrol: fatal: Unable to process configuration file' >&2; exit 1",
            "fatal: Unable to process configuration file",
        ),
        ("exit 1", "exit status 1"),
    ],
)
def test_a_controller_that_does_not_answer_is_named_in_one_line(
    tmp_path, monkeypatch, capsys, said, cause
):
    monkeypatch.setenv("PATH", stand_in_scontrol(tmp_path / "bin", said))
    line = refusal(capsys)
    assert line == (
        f"error: profiles/slurm: no SLURM controller answers (scontrol ping: {cause}); {HINT}"
    )


def test_a_ping_that_hangs_is_refused_after_the_timeout(tmp_path, monkeypatch, capsys):
    hang = f"exec {shutil.which('sleep')} 60"
    monkeypatch.setenv("PATH", stand_in_scontrol(tmp_path / "bin", hang))
    line = refusal(capsys, timeout_s=0.5)
    assert line == (
        "error: profiles/slurm: no SLURM controller answers (scontrol ping: no reply within "
        f"0.5 s); {HINT}"
    )


def test_missing_slurm_tools_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    line = refusal(capsys)
    assert line.startswith(
        "error: profiles/slurm: SLURM's scontrol cannot run (No such file or directory); "
    )
    assert line.endswith("or run without --profile profiles/slurm")


@PROPERTY
@given(stdout=st.text(max_size=200), stderr=st.text(max_size=200))
def test_whatever_scontrol_says_the_cause_is_one_line_of_it(stdout, stderr):
    cause = ping_failure(subprocess.CompletedProcess(["scontrol", "ping"], 1, stdout, stderr))
    assert len(cause.splitlines()) == 1
    assert cause == "exit status 1" or cause in stdout or cause in stderr


def controller_that_does_not_answer(folder) -> str:
    """A slurm.conf whose controller is a local port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = folder / "slurm.conf"
    conf.write_text(
        f"ClusterName=isaac-no-controller\nSlurmctldHost=localhost\nSlurmctldPort={port}\n"
    )
    return str(conf)


def path_without_slurm(folder) -> str:
    """A PATH with this venv's tools, a shell and `which` (the SLURM plugin looks tools up with it),
    but none of SLURM's."""
    folder.mkdir()
    for tool in "bash", "sh", "which":
        (folder / tool).symlink_to(shutil.which(tool))
    assert not shutil.which("scontrol", path=str(folder))
    return f"{SNAKEMAKE.parent}:{folder}"


@pytest.mark.workflow
def test_a_run_through_slurm_without_a_controller_stops_before_any_job(tmp_path):
    if not shutil.which("scontrol"):
        slurm_unavailable(
            "SLURM's scontrol is not on PATH (tests/slurm/start_cluster.sh installs it)"
        )
    env = {"SLURM_CONF": controller_that_does_not_answer(tmp_path)}
    proc = snakemake(tmp_path, "--profile", PROFILE, TARGET, check=False, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    (line,) = [line for line in output.splitlines() if line.startswith("error: ")]
    assert line.startswith(
        "error: profiles/slurm: no SLURM controller answers (scontrol ping: Slurmctld(primary) at "
    ), output
    assert line.endswith(f" is DOWN); {HINT}"), output
    assert proc.stderr.strip().splitlines()[-1] == line
    assert "rule ingest" not in output and "Traceback" not in output, output
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.workflow
def test_without_slurm_tools_a_slurm_run_stops_and_its_dry_run_and_local_runs_go_on(tmp_path):
    env = {"PATH": path_without_slurm(tmp_path / "bin")}
    proc = snakemake(tmp_path, "--profile", PROFILE, TARGET, check=False, env=env)
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: profiles/slurm: SLURM's scontrol cannot run (No such file or directory); "
        )
    ), proc.stderr
    assert not (tmp_path / "results").exists()
    # A dry run submits nothing, so it plans without asking SLURM.
    dry = snakemake(tmp_path, "--profile", PROFILE, TARGET, "--dry-run", env=env)
    assert "rule ingest:" in dry.stdout
    assert not (tmp_path / "results").exists()
    # A local run never checks for SLURM.
    snakemake(tmp_path, "--cores", "1", TARGET, env=env)
    assert (tmp_path / TARGET).is_file()
