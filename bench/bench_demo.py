"""Benchmark of the whole demo (not a test): `snakemake --cores N` from scratch, timed.

Runs the workflow on the demo (config/demo.yaml) in a fresh temporary folder,
so nothing cached is reused, and prints a Markdown table: total wall time, peak resident memory
of any single job, and the summed job time per rule from Snakemake's benchmark files.

    .venv/bin/python bench/bench_demo.py --cores 2 --record

`--record` merges the key `demo_wall_s` (with the per-rule rows) into docs/benchmarks.json and
rewrites docs/benchmarks/demo_rules.csv from it (bench/tables.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from record import record  # noqa: E402
from rule_times import rule_times  # noqa: E402
from tables import write_tables  # noqa: E402


def run_demo(workdir: Path, cores: int) -> float:
    """Run the demo workflow in `workdir` and return its wall time in seconds."""
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [
        str(snakemake),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(REPO / "config" / "demo.yaml"),
        "--cores",
        str(cores),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--record", action="store_true", help="merge into docs/benchmarks.json")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="isaac-demo-") as tmp:
        workdir = Path(tmp)
        wall = run_demo(workdir, args.cores)
        per_rule = rule_times(workdir / "benchmarks" / "demo")
        summary = (workdir / "results" / "demo" / "summary.md").read_text()
    peak_child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"--cores {args.cores}; Python {platform.python_version()}\n"
    )
    print(
        f"Demo wall time: {wall:.0f} s ({wall / 60:.1f} min); "
        f"peak RSS of one process: {peak_child_mb:.0f} MB\n"
    )
    print("Job time by rule (rules with a benchmark: directive):\n")
    print(per_rule.to_markdown(index=False, floatfmt=".1f"))
    print("\nsummary.md of that run:\n")
    print(summary)
    if args.record:
        record(
            "demo_wall_s",
            round(wall, 1),
            "s (snakemake --cores N on config/demo.yaml from scratch)",
            f"python bench/bench_demo.py --cores {args.cores} --record",
            peak_rss_mb=round(peak_child_mb, 1),
            benchmarked_jobs=int(per_rule["jobs"].sum()),
            rules=per_rule.to_dict("records"),
            load_average_before=[round(x, 2) for x in load],
        )
        write_tables()


if __name__ == "__main__":
    main()
