"""The workflow on a real (single-node) SLURM cluster through profiles/slurm.

A session fixture starts SLURM with tests/slurm/start_cluster.sh (installing Debian's
slurm-wlm and munge when they are missing and this runs as root), and stops it afterwards.
Where SLURM cannot be started the tests skip with the reason, except under CI (CI=true),
where they fail: CI must exercise the cluster path.

The run uses the profile as a user would, plus test-only overrides: resources capped to the
one node's CPUs and memory (the GPU requests are kept), short status-polling intervals, kept
SLURM logs, and `timeout -s KILL` around Snakemake (it ignores SIGTERM while jobs run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import (
    REPO,
    SNAKEMAKE,
    TINY_CONFIG,
    copy_of_tiny_run,
    slurm_unavailable,
    snakemake,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

SLURM_DIR = REPO / "tests" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
TINY = "results/tiny"
GPU_RULES = ("train", "generate")
RUN = "isaac/tau1.0-m1-seed0"
# The cluster run trains with two data-parallel processes (CPU processes with gloo, on the
# node's two fake GPUs): the train job asks for one GPU per process.
TRAIN_PROCESSES = 2
GPUS = {"train": TRAIN_PROCESSES, "generate": 1}

# The sampling stage for every method of the tiny sweep, plus one train + generate, which
# proves the GPU request without paying for the whole sweep's training.
TARGETS = [
    f"{TINY}/targets/{method}/tau1.0-m1-seed0.parquet"
    for method in ("raw", "random", "sft", "isaac", "isaac_paper", "exp", "max")
] + [f"{TINY}/generations/{RUN}.parquet"]

# Outputs that must not depend on where a job ran: byte-identical to a local run.
DETERMINISTIC = ("corpus.parquet", "neighbours", "groups", "targets")

# The embedding split into two shard jobs on the cluster, against the unsharded local file.
EMBEDDINGS = f"{TINY}/embeddings/minilm.npz"
MINILM = "embed:\n  encoder: minilm\n"

START_TIMEOUT_S = 420  # apt-get update + install on a slow mirror included
RUN_TIMEOUT_S = 480


def _node() -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "node", "localhost"], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


@pytest.fixture(scope="session")
def slurm_cluster():
    """A SLURM cluster with one idle node "localhost" (CPUs, RealMemory) and two GPUs."""
    if os.name != "posix":
        slurm_unavailable("SLURM needs a POSIX system")
    try:
        proc = subprocess.run(
            ["bash", str(SLURM_DIR / "start_cluster.sh")],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"start_cluster.sh did not finish within {START_TIMEOUT_S}s")
    if proc.returncode == 77:
        lines = proc.stderr.strip().splitlines()
        slurm_unavailable(lines[-1] if lines else "start_cluster.sh could not start SLURM")
    if proc.returncode != 0:
        pytest.fail(f"start_cluster.sh exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    try:
        node = _node()
        assert node.get("Gres", "").startswith(f"gpu:{TRAIN_PROCESSES}"), node
        yield node
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "stop_cluster.sh")], timeout=120)


def capped_overrides(profile: dict, cpus: int, mem_mb: int, jobs: int) -> list[str]:
    """Command-line options that fit the profile's requests onto one small node.

    Every resource the profile sets is passed on (a command-line option replaces the
    profile's whole key); memory is capped with min() around the profile's own expression
    and CPU counts at the node's (per GPU: the node's CPUs shared by the train job's GPUs), so
    the GPU requests stay exactly as the profile and the rules have them.
    """
    mem_cap = max(256, mem_mb // jobs)

    def fit(name, value):
        if name == "mem_mb":
            return f"min({value}, {mem_cap})"
        if name == "cpus_per_gpu":
            return str(max(1, min(int(value), cpus // TRAIN_PROCESSES)))
        if name == "cpus_per_task":
            return str(min(int(value), cpus))
        return str(value)

    defaults = [f"{k}={fit(k, v)}" for k, v in profile.get("default-resources", {}).items()]
    per_rule = [
        f"{rule}:{k}={fit(k, v)}"
        for rule, resources in profile.get("set-resources", {}).items()
        for k, v in resources.items()
    ]
    threads = [f"{rule}={min(int(n), cpus)}" for rule, n in profile.get("set-threads", {}).items()]
    args = ["--default-resources", *defaults, "--max-threads", str(cpus)]
    if per_rule:
        args += ["--set-resources", *per_rule]
    if threads:
        args += ["--set-threads", *threads]
    return args


def test_profile_asks_a_gpu_for_generate_and_one_node_for_train():
    """generate's GPU comes from the profile; train asks one per process itself (the rule's
    gpu resource), all on one node."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    generate, train = profile["set-resources"]["generate"], profile["set-resources"]["train"]
    assert generate.get("gpu") == 1 or "gpu" in str(generate.get("gres", ""))
    assert "gpu" not in train and "gres" not in train and train["nodes"] == 1
    for resources in (generate, train):
        assert isinstance(resources["runtime"], str)


def test_capped_overrides_keep_the_gpu_request_and_cap_memory():
    profile = {
        "default-resources": {"mem_mb": "attempt * 2000", "runtime": "30m"},
        "set-resources": {"train": {"gpu": 1, "cpus_per_gpu": 4, "mem_mb": 16000}},
        "set-threads": {"train": 4},
    }
    args = capped_overrides(profile, cpus=2, mem_mb=6000, jobs=2)
    assert args[:3] == ["--default-resources", "mem_mb=min(attempt * 2000, 3000)", "runtime=30m"]
    assert "train:gpu=1" in args and "train:cpus_per_gpu=1" in args
    assert "train:mem_mb=min(16000, 3000)" in args
    assert args[args.index("--set-threads") + 1] == "train=2"


def _run_via_slurm(
    workdir: Path, node: dict[str, str], jobs: int, targets=TARGETS, configfiles=(TINY_CONFIG,)
) -> subprocess.CompletedProcess:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    cpus, mem_mb = int(node["CPUTot"]), int(node["RealMemory"])
    cmd = [
        "timeout",
        "-s",
        "KILL",
        str(RUN_TIMEOUT_S),
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles),
        "--profile",
        str(PROFILE),
        "--jobs",
        str(jobs),
        *capped_overrides(profile, cpus, mem_mb, jobs),
        "--retries",
        "0",
        "--latency-wait",
        "5",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "1",
        *targets,
    ]
    # Jobs run `python -m snakemake` and `python -m isaac` from PATH: this venv's (sbatch
    # exports the submitting environment).
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)


def _scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "--details", "show", "job", job_id], capture_output=True, text=True
    )
    assert out.returncode == 0, f"SLURM forgot job {job_id}: {out.stderr}"
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def _failure(proc: subprocess.CompletedProcess, cluster: Path, log: str) -> None:
    if proc.returncode != 0:
        slurm_logs = sorted((cluster / ".snakemake" / "slurm_logs").rglob("*.log"))
        tails = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in slurm_logs[-3:])
        pytest.fail(
            f"snakemake via SLURM exited {proc.returncode} (137 = killed after "
            f"{RUN_TIMEOUT_S}s)\n{log[-6000:]}\n{tails}"
        )


def _beside_a_local_run(
    local: Path, cluster: Path, node: dict[str, str], targets, local_layers, cluster_layers
) -> str:
    """The targets built locally (--cores 2) and through SLURM side by side (the cluster run
    spends most of its time waiting on SLURM); the cluster run's log."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        local_run = pool.submit(
            snakemake, local, "--cores", "2", *targets, configfiles=local_layers
        )
        proc = _run_via_slurm(cluster, node, jobs=2, targets=targets, configfiles=cluster_layers)
        local_run.result()
    log = proc.stdout + proc.stderr
    _failure(proc, cluster, log)
    return log


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The targets built through SLURM with profiles/slurm (the local run of the same config
    they are compared with is the session's tiny run)."""
    cluster = tmp_path_factory.mktemp("cluster")
    (cluster / "processes.yaml").write_text(f"train:\n  processes: {TRAIN_PROCESSES}\n")
    layers = (TINY_CONFIG, cluster / "processes.yaml")
    proc = _run_via_slurm(cluster, slurm_cluster, jobs=2, targets=TARGETS, configfiles=layers)
    log = proc.stdout + proc.stderr
    _failure(proc, cluster, log)
    return cluster, log


@pytest.fixture(scope="module")
def sharded_embedding(slurm_cluster, tmp_path_factory):
    """MiniLM embeddings built locally in one job and through SLURM in two shard jobs."""
    local = tmp_path_factory.mktemp("local-embed")
    (local / "minilm.yaml").write_text(MINILM)
    cluster = tmp_path_factory.mktemp("cluster-embed")
    (cluster / "shards.yaml").write_text(MINILM + "  shards: 2\n")
    log = _beside_a_local_run(
        local,
        cluster,
        slurm_cluster,
        [EMBEDDINGS],
        (TINY_CONFIG, local / "minilm.yaml"),
        (TINY_CONFIG, cluster / "shards.yaml"),
    )
    return local, cluster, log


def test_every_job_went_through_sbatch(slurm_run):
    cluster, log = slurm_run
    finished = dict(re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log))
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    assert finished, log[-3000:]
    for rule in ("ingest", "sample", *GPU_RULES):
        assert rule in finished.values(), (rule, sorted(set(finished.values())))
    not_submitted = {jobid: rule for jobid, rule in finished.items() if jobid not in submitted}
    assert not not_submitted, f"jobs that ran outside SLURM: {not_submitted}"
    for jobid, rule in finished.items():
        slurm_id = submitted[jobid]
        job = _scontrol_job(slurm_id)
        assert job["JobState"] == "COMPLETED", (rule, job)
        assert job["Comment"].startswith(f"rule_{rule}"), (rule, job["Comment"])
        logs = list(
            (cluster / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob(f"{slurm_id}.log")
        )
        assert logs, f"no SLURM log for job {slurm_id} ({rule})"


def test_gpu_rules_asked_for_a_gpu_and_the_others_did_not(slurm_run):
    _, log = slurm_run
    finished = dict(re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log))
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    seen = set()
    for jobid, rule in finished.items():
        job = _scontrol_job(submitted[jobid])
        asks_gpu = "gpu" in job.get("TresPerJob", "") or "gpu" in job.get("TresPerNode", "")
        assert asks_gpu == (rule in GPU_RULES), (
            rule,
            job.get("TresPerJob"),
            job.get("TresPerNode"),
        )
        if asks_gpu:
            # SLURM allocated the node's (fake) GPUs to the job: one per train process.
            gres = job.get("JOB_GRES", "")
            assert gres.startswith(f"gpu:{GPUS[rule]}"), (rule, gres)
            seen.add(rule)
    assert seen == set(GPU_RULES), seen


def test_the_train_job_ran_two_processes_through_sbatch(slurm_run):
    cluster, _ = slurm_run
    log = (cluster / "logs" / "tiny" / "train" / f"{RUN}.log").read_text()
    for rank in range(TRAIN_PROCESSES):
        assert f"process {rank} of {TRAIN_PROCESSES}" in log, log[-3000:]
    assert (cluster / TINY / "models" / RUN / "model.safetensors").is_file()


def test_cluster_outputs_equal_a_local_run_byte_for_byte(slurm_run, tiny_run):
    """Every deterministic file the cluster run wrote equals the local run's (the tiny run of
    the same config, which built these and more)."""
    cluster, _ = slurm_run
    compared = 0
    for name in DETERMINISTIC:
        made = cluster / TINY / name
        assert made.exists(), f"the SLURM run did not write {made}"
        for path in [made] if made.is_file() else sorted(made.rglob("*")):
            if not path.is_file():
                continue
            local = tiny_run / path.relative_to(cluster)
            assert local.is_file(), f"the local run did not write {local}"
            assert path.read_bytes() == local.read_bytes(), f"differs from the local run: {path}"
            compared += 1
    targets = [t for t in TARGETS if "/targets/" in t]
    # corpus, neighbours, groups, and a table + stats file per sampled method
    assert compared >= 3 + 2 * len(targets), compared
    generations = cluster / TINY / "generations" / f"{RUN}.parquet"
    assert generations.stat().st_size > 0


def test_two_embedding_shards_on_the_cluster_gather_into_the_unsharded_bytes(sharded_embedding):
    local, cluster, log = sharded_embedding
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log)
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    shard_jobs = [jobid for jobid, rule in finished if rule == "embed_shard"]
    assert len(shard_jobs) == 2 and all(jobid in submitted for jobid in shard_jobs), log[-3000:]
    gathered = (cluster / EMBEDDINGS).read_bytes()
    assert len(gathered) > 100_000  # 278 rows x 2 x 384 float32
    assert gathered == (local / EMBEDDINGS).read_bytes()


def test_missing_slurm_skips_with_the_reason_but_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no apt-get"):
        slurm_unavailable("no apt-get")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI but no apt-get"):
        slurm_unavailable("no apt-get")


def test_every_memory_request_of_the_profile_grows_with_the_attempt():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    requests = [
        profile["default-resources"]["mem_mb"],
        *(r["mem_mb"] for r in profile["set-resources"].values() if "mem_mb" in r),
    ]
    assert requests and all("attempt" in str(mem) for mem in requests), requests
    assert profile["retries"] >= 1


# A first allocation the train job (about 0.5 GB, plus Snakemake's job step) outgrows for
# seconds: the profile's `attempt * base` with a small base. Its peak differs between machines
# (0.5 to 0.85 GB seen), so the test allows two retries: every attempt but the last is killed for
# memory, each asks for `attempt * base`, and the last completes.
TRAIN_MEM_BASE_MB = 400
TRAIN_MEM_RETRIES = 2


def test_a_job_killed_for_memory_is_retried_with_more(slurm_cluster, tiny_run, tmp_path):
    """The train job exceeds its first allocation, SLURM kills it (OverMemoryKill), and the
    profile's retries resubmit it with `attempt` times the memory until it completes."""
    model = f"{TINY}/models/raw/tau1.0-m1-seed0"
    workdir = copy_of_tiny_run(tiny_run, tmp_path / "run")  # the model's inputs, built locally
    shutil.rmtree(workdir / model)  # what the train job makes
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    overrides = capped_overrides(
        profile, int(slurm_cluster["CPUTot"]), int(slurm_cluster["RealMemory"]), jobs=1
    )
    overrides = [
        f"train:mem_mb=attempt * {TRAIN_MEM_BASE_MB}" if o.startswith("train:mem_mb=") else o
        for o in overrides
    ]
    cmd = [
        "timeout",
        "-s",
        "KILL",
        str(RUN_TIMEOUT_S),
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(TINY_CONFIG),
        "--profile",
        str(PROFILE),
        "--jobs",
        "1",
        *overrides,
        "--retries",
        str(max(profile["retries"], TRAIN_MEM_RETRIES)),
        "--latency-wait",
        "5",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "1",
        model,
    ]
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    slurm_ids = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", log)
    assert 2 <= len(slurm_ids) <= 1 + TRAIN_MEM_RETRIES, log[-6000:]
    jobs = [_scontrol_job(slurm_id) for slurm_id in slurm_ids]
    for attempt, (slurm_id, job) in enumerate(zip(slurm_ids, jobs), start=1):
        assert job["MinMemoryNode"] == f"{attempt * TRAIN_MEM_BASE_MB}M", job
        if attempt < len(jobs):
            assert job["JobState"] in ("OUT_OF_MEMORY", "FAILED", "CANCELLED"), job
            slurm_log = next((workdir / ".snakemake" / "slurm_logs").rglob(f"{slurm_id}.log"))
            assert "exceeded memory limit" in slurm_log.read_text().lower(), slurm_log.read_text()
    assert jobs[-1]["JobState"] == "COMPLETED", jobs[-1]
    assert (workdir / model / "model.safetensors").is_file()
