"""Benchmark of the workflow's own overhead (not a test): Snakemake start-up and stage imports.

1. The DiaSafety DAG with the 3-seed sweep (config/diasafety.yaml + config/diasafety-seeds.yaml):
   a dry run in an empty folder (every job planned) and a no-op rerun in a folder where every
   output exists (written as placeholders, then `snakemake --touch`, so nothing runs). Each is
   timed as a user starts it and with SLURM_CONF=/dev/null (the setting for local runs,
   docs/cluster.md), alternating. Where SLURM's client tools are installed, the SLURM executor
   plugin runs `scontrol show config` at every Snakemake start, which waits about 9 s when no
   controller answers; the key names say which case was measured (no_slurm, controller_down,
   controller_up).
2. The start-up of every stage's process: `python -c "import isaac.<stage>"`, median per stage;
   with --baseline-src another checkout's src/ (e.g. the commit before lazy imports) alternates.

    .venv/bin/python bench/overhead.py --diasafety ../shared/data/diasafety
    .venv/bin/python bench/overhead.py --diasafety ../shared/data/diasafety \
        --baseline-src /tmp/before/src

Writes keys workflow_dry_run_<case>, workflow_noop_rerun_<case> and stage_imports to
docs/benchmarks.json, and the table docs/benchmarks/workflow_overhead.csv (bench/tables.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from record import record  # noqa: E402
from tables import write_tables  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CONFIGS = [REPO / "config" / "diasafety.yaml", REPO / "config" / "diasafety-seeds.yaml"]
LOCAL_RUN_ENV = {"SLURM_CONF": os.devnull}
# The modules the rules run (rule X runs python -m isaac.X, figures share three modules).
STAGES = (
    "ingest",
    "tokenize",
    "ngrams",
    "likelihood",
    "longtail",
    "encoder_model2vec",
    "embed",
    "neighbours",
    "assess",
    "sample",
    "sample_figures",
    "generator_tokenizer",
    "generator_base",
    "train",
    "prompts",
    "generate",
    "judge",
    "score",
    "report",
)


def slurm_case() -> str:
    """no_slurm (no client tools), controller_up or controller_down."""
    if shutil.which("scontrol") is None:
        return "no_slurm"
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "controller_down"
    return "controller_up" if "is UP" in out.stdout else "controller_down"


def seconds(cmd: list[str], env: dict, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


def directory_rules() -> set[str]:
    """Rules whose output is a folder (directory(...) in their output block)."""
    found = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M)[1:]:
            output = re.search(r"\n    output:\n(.*?)\n    \w+:", block, re.S)
            if output and "directory(" in output.group(1):
                found.add(re.match(r"rule (\w+):", block).group(1))
    return found


def finished_folder(workdir: Path, snakemake: list[str], env: dict) -> None:
    """Every output of the DAG as a placeholder, then touched in DAG order: a finished run."""
    summary = subprocess.run(
        [*snakemake, "--summary"], env=env, capture_output=True, text=True, check=True
    ).stdout
    folders = directory_rules()
    for line in summary.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < 3 or not fields[0]:
            continue
        path = workdir / fields[0]
        if fields[2] in folders:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("placeholder\n")  # ensure(non_empty=True) refuses empty files
    subprocess.run(
        [*snakemake, "--touch", "--cores", "1"], env=env, capture_output=True, check=True
    )


def workflow_overhead(diasafety: Path, repeats: int, case: str, command: str, record_it: bool):
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SLURM_CONF", None)
    local_env = {**env, **LOCAL_RUN_ENV}
    with tempfile.TemporaryDirectory() as tmp:
        empty, done = Path(tmp) / "empty", Path(tmp) / "done"
        for folder in (empty, done):
            folder.mkdir()
            (folder / "path.yaml").write_text(f"corpus:\n  path: {diasafety.resolve()}\n")

        def snakemake(folder):
            return [
                str(SNAKEMAKE),
                "--snakefile",
                str(REPO / "Snakefile"),
                "--directory",
                str(folder),
                "--configfile",
                *map(str, CONFIGS),
                str(folder / "path.yaml"),
            ]

        finished_folder(done, snakemake(done), local_env)
        runs = {
            "dry_run": (snakemake(empty) + ["--dry-run"], empty),
            "noop_rerun": (snakemake(done) + ["--cores", "2"], done),
        }
        for name, (cmd, folder) in runs.items():
            plain, local = [], []
            for _ in range(repeats):
                plain.append(seconds(cmd, env, folder))
                local.append(seconds(cmd, local_env, folder))
            value, baseline = statistics.median(local), statistics.median(plain)
            print(
                f"{name} ({case}): {value:.2f} s with SLURM_CONF=/dev/null, {baseline:.2f} s "
                f"without; load {os.getloadavg()[0]:.1f}"
            )
            if record_it:
                record(
                    f"workflow_{name}_{case}",
                    value,
                    "s",
                    command,
                    baseline=baseline,
                    load_average=round(os.getloadavg()[0], 2),
                    repeats=repeats,
                    note="value: SLURM_CONF=/dev/null (local runs); baseline: as started plainly",
                )


def stage_imports(repeats: int, baseline_src: Path | None, command: str, record_it: bool):
    def import_seconds(src: Path, stage: str) -> float:
        env = {**os.environ, "PYTHONPATH": str(src)}
        return seconds([sys.executable, "-c", f"import isaac.{stage}"], env)

    ours, theirs = {}, {}
    for stage in STAGES:
        runs, base = [], []
        for _ in range(repeats):
            runs.append(import_seconds(REPO / "src", stage))
            if baseline_src:
                base.append(import_seconds(baseline_src, stage))
        ours[stage] = round(statistics.median(runs), 3)
        if baseline_src:
            theirs[stage] = round(statistics.median(base), 3)
        print(
            f"import isaac.{stage}: {ours[stage]:.2f} s"
            + (f" (baseline {theirs[stage]:.2f} s)" if baseline_src else "")
        )
    total = sum(ours.values())
    baseline = sum(theirs.values()) if baseline_src else None
    print(
        f"all {len(STAGES)} stage imports: {total:.1f} s"
        + (f" (baseline {baseline:.1f} s)" if baseline else "")
    )
    if record_it:
        record(
            "stage_imports",
            total,
            "s",
            command,
            baseline=baseline,
            per_stage=ours,
            baseline_per_stage=theirs or None,
            load_average=round(os.getloadavg()[0], 2),
            repeats=repeats,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--diasafety", type=Path, required=True, help="folder with DiaSafety's train/val/test.json"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, help="src/ of a checkout to compare imports")
    parser.add_argument("--skip-imports", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    command = f"python bench/overhead.py --diasafety {args.diasafety} --repeats {args.repeats}"
    case = slurm_case()
    print(f"SLURM: {case}")
    workflow_overhead(args.diasafety, args.repeats, case, command, not args.no_record)
    if not args.skip_imports:
        if args.baseline_src:
            command += f" --baseline-src {args.baseline_src}"
        stage_imports(args.repeats, args.baseline_src, command, not args.no_record)
    if not args.no_record:
        write_tables()


if __name__ == "__main__":
    main()
