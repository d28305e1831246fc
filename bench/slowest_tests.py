"""Benchmark of the test suite as `make test` runs it: its wall time and its ten slowest tests.

    .venv/bin/python bench/slowest_tests.py --record

runs `make test` (the install step is a no-op once .venv exists) with a JUnit report, under
CI=true so that no SLURM test may skip, and records key `test_suite` in docs/benchmarks.json:
the wall time of the whole run, the load average before it, the number of tests and workers,
and the ten slowest tests. A test's seconds are its setup, call and teardown together, as the
JUnit report counts them, so a module fixture's run is charged to the first test that uses it.
bench/tables.py renders the slowest as docs/benchmarks/slowest_tests.csv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from record import record  # noqa: E402
from tables import write_tables  # noqa: E402

SLOWEST = 10


def case_times(junit_xml: Path) -> list[tuple[str, float]]:
    """(test id, seconds) for every test case of a JUnit report, slowest first."""
    cases = ET.parse(junit_xml).getroot().iter("testcase")
    times = [
        (
            f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}",
            float(case.get("time", 0)),
        )
        for case in cases
    ]
    return sorted(times, key=lambda pair: -pair[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2, help="`make test CORES=...`: workers")
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        load = [round(x, 2) for x in os.getloadavg()]
        start = time.perf_counter()
        proc = subprocess.run(
            ["make", "test", f"CORES={args.cores}", f"PYTEST_ARGS=--junitxml={junit}"],
            cwd=REPO,
            env={**os.environ, "CI": "true"},
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"make test exited {proc.returncode}: nothing recorded")
        times = case_times(junit)
    print(f"{len(times)} tests in {wall / 60:.1f} min with {args.cores} workers")
    for test, seconds in times[:SLOWEST]:
        print(f"{seconds:8.1f} s  {test}")
    if args.record:
        record(
            "test_suite",
            wall,
            "s",
            f".venv/bin/python bench/slowest_tests.py --cores {args.cores} --record",
            tests=len(times),
            workers=args.cores,
            load_average_before=load,
            slowest=[{"test": test, "seconds": round(s, 1)} for test, s in times[:SLOWEST]],
        )
        write_tables()


if __name__ == "__main__":
    main()
