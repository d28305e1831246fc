"""The benchmark tables rendered from recorded measurements (bench/tables.py), on tiny inputs."""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import rule_times  # noqa: E402
import slowest_tests  # noqa: E402
import tables  # noqa: E402

SAMPLING_VS_LOOP = {
    "stages_s": [3.04, 3.2],
    "loop_s": [17.466, 19.2],
    "in_process_s": [2.351, 1.5],
    "per_stage_s": {"assess": [1.3, 1.2], "neighbours": [1.2, 1.4], "sample": [0.5, 0.6]},
}
BENCHMARKS = {
    "sampling_vs_loop": SAMPLING_VS_LOOP,
    "sampling_vs_loop_default": {**SAMPLING_VS_LOOP, "loop_s": [6.1, 6.3]},
    "sampling_vs_loop_minilm": {**SAMPLING_VS_LOOP, "loop_s": [18.0, 19.0]},
    "ngrams_vs_counter": {"ngrams": 1234, "seconds": 0.1, "baseline_seconds": 0.6, "ratio": 6.0},
    "tokenize_2_processes": {
        "tokens": 5000,
        "distinct_texts": 40,
        "value": 2000.4,
        "baseline": 1000.0,
        "ratio": 2.0004,
    },
    "workflow_dry_run_no_slurm": {"value": 1.5, "baseline": 1.6, "load_average": 0.5},
    "workflow_noop_rerun_no_slurm": {"value": 1.25, "baseline": 1.3, "load_average": 0.25},
    "demo_wall_s": {"rules": [{"rule": "train", "jobs": 7, "seconds": 607.49, "peak_rss_mb": 869}]},
    "sampling_in_process": {"times_s": {"neighbours": 0.851, "assess (vectorised)": 0.449}},
    "test_suite": {"slowest": [{"test": "tests/test_a.py::test_b", "seconds": 61.25}]},
}
TRAIN_CPU = {
    "rows": {
        "tiny": {
            "1proc": {"seconds_per_step": 0.1672, "batch_size": 32, "tokens_per_s": 5117.6},
            "2proc": {"seconds_per_step": 0.3, "batch_size": 32, "tokens_per_s": 2852.3},
        }
    }
}
GPU_TRAIN = {
    "rows": [
        {
            "batch_size": 8,
            "median_step_s": 0.14966,
            "tokens_per_step": 421.13,
            "tokens_per_s": 2720.68,
            "model_tflops_per_s": 1.5038,
            "mfu_fp32": 0.022444,
            "mfu_bf16": None,
        }
    ]
}


def written(root, name: str) -> list[dict]:
    return pd.read_csv(root / "docs" / "benchmarks" / name, dtype=str).to_dict("records")


def test_every_table_is_written_with_the_rounding_the_page_shows(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "benchmarks.json").write_text(json.dumps(BENCHMARKS))
    (tmp_path / "docs" / "results" / "train-cpu.json").write_text(json.dumps(TRAIN_CPU))
    (tmp_path / "docs" / "results" / "gpu-train.json").write_text(json.dumps(GPU_TRAIN))
    assert {path.name for path in tables.write_tables(tmp_path)} == set(tables.TABLES)
    assert written(tmp_path, "sampling_vs_loop.csv")[0] == {
        "repetition": "1",
        "neighbours s": "1.20",
        "assess s": "1.30",
        "sample s": "0.50",
        "stages s": "3.04",
        "loop s": "17.5",
        "ratio": "5.7",
        "the three `main`s in-process s": "2.35",
    }
    assert [row["loop s"] for row in written(tmp_path, "sampling_vs_loop_default.csv")] == [
        "6.1",
        "6.3",
    ]
    assert written(tmp_path, "sampling_vs_loop_minilm.csv")[1]["ratio"] == "5.9"
    assert written(tmp_path, "train_cpu.csv") == [
        {
            "generator": "tiny",
            "batch": "32",
            "1 process: tokens/s": "5,118",
            "2 processes: tokens/s": "2,852",
            "2 / 1 processes": "0.56x",
            "s/step, Trainer engine": "0.167",
            "s/step, previous loop": "-",
        }
    ]
    assert written(tmp_path, "gpu_train.csv")[0]["tokens/s"] == "2,721"
    assert written(tmp_path, "gpu_train.csv")[0]["MFU bf16"] == "-"
    assert [row["isaac"] for row in written(tmp_path, "corpus_stages.csv")] == [
        "0.100 s",
        "2,000 tokens/s",
    ]
    assert written(tmp_path, "workflow_overhead.csv")[1] == {
        "case": "no_slurm",
        "started": "plainly",
        "dry run s": "1.60",
        "no-op rerun s": "1.30",
        "load average (dry run / no-op)": "0.50 / 0.25",
    }
    assert written(tmp_path, "demo_rules.csv") == [
        {"rule": "train", "jobs": "7", "seconds": "607.5", "peak_rss_mb": "869.0"}
    ]
    assert written(tmp_path, "slowest_tests.csv") == [
        {"test": "tests/test_a.py::test_b", "seconds": "61.2"}
    ]
    assert written(tmp_path, "sampling_steps.csv")[1] == {
        "step": "assess (vectorised)",
        "seconds": "0.45",
    }


def test_a_table_whose_measurements_are_not_recorded_is_not_written(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.json").write_text(json.dumps({"other": {"value": 1}}))
    assert tables.write_tables(tmp_path) == []


def test_the_committed_tables_are_those_of_the_committed_measurements(tmp_path):
    """`python bench/tables.py` has been run since a measurement was last recorded."""
    for source in {source for source, _ in tables.TABLES.values()}:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / source, tmp_path / source)
    for path in tables.write_tables(tmp_path):
        assert path.read_text() == (REPO / "docs" / "benchmarks" / path.name).read_text()


def test_the_demo_rules_table_sums_the_benchmark_files_of_each_rule(tmp_path):
    for relative, seconds, rss in (
        ("demo/train/isaac.tsv", 10.0, 800.0),
        ("demo/train/raw.tsv", 12.5, 850.5),
        ("demo/ingest.tsv", 0.7, 139.1),
    ):
        path = tmp_path / "benchmarks" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"s": [seconds], "cpu_time": [seconds / 2], "max_rss": [rss]}).to_csv(
            path, sep="\t", index=False
        )
    assert rule_times.rule_times(tmp_path / "benchmarks" / "demo").to_dict("records") == [
        {"rule": "ingest", "jobs": 1, "seconds": 0.7, "cpu_seconds": 0.35, "peak_rss_mb": 139.1},
        {"rule": "train", "jobs": 2, "seconds": 22.5, "cpu_seconds": 11.25, "peak_rss_mb": 850.5},
    ]


def test_slowest_tests_reads_each_case_of_a_junit_report_slowest_first(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="test_fast" time="0.5"/>'
        '<testcase classname="tests.test_b" name="test_slow[x-1]" time="12.25"/>'
        "</testsuite></testsuites>"
    )
    assert slowest_tests.case_times(report) == [
        ("tests/test_b.py::test_slow[x-1]", 12.25),
        ("tests/test_a.py::test_fast", 0.5),
    ]
