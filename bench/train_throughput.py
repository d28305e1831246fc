"""Training throughput on this machine's CPUs: the train command with 1 and 2 processes.

Runs `python -m isaac.train` as the workflow's train job runs it (2 processes: relaunched under
torchrun, gloo, one thread each; 1 process: both threads), for the tiny generator on the demo's
isaac targets (batch 32) and for SmolLM2 with LoRA on DiaSafety's (batch 8, the SmolLM2
experiment's settings). Each setting trains twice, for a short and a long step count; the
throughput is the difference of the non-padding tokens the two train logs count over the
difference of their wall times, so start-up (imports, model loading, the process group) cancels
out. With `--baseline-src`, the same is measured for the train command of another checkout's
`src` (1 process, its own settings keys) as seconds per step, the comparison of the two engines.

    python bench/train_throughput.py [--baseline-src ../old/src]

Writes docs/results/train-cpu.json, the keys `train_cpu_*` of docs/benchmarks.json and the
table docs/benchmarks/train_cpu.csv (bench/tables.py).

Needs results/demo (`snakemake --cores 2`) and, for SmolLM2, the DiaSafety isaac targets and the
de-quantised base (`snakemake --cores 2 results/diasafety/generator_base
results/diasafety/targets/isaac/tau1.0-m1-seed0.parquet --configfile config/diasafety.yaml
config/diasafety-smollm2.yaml`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from gpu_train import merged_config  # noqa: E402
from isaac.settings import section_settings  # noqa: E402
from record import BENCHMARKS_JSON, record  # noqa: E402
from tables import write_tables  # noqa: E402

NEW_KEYS = ("processes", "gradient_accumulation", "gradient_checkpointing", "precision", "fsdp")
SETUPS = {
    "tiny": {
        "layers": [],
        "targets": "results/demo/targets/isaac/tau1.0-m1-seed0.parquet",
        "inputs": ["--tokenizer", "results/demo/generator_tokenizer"],
        "steps": (5, 45),
    },
    "smollm2": {
        "layers": ["config/diasafety.yaml", "config/diasafety-smollm2.yaml"],
        "targets": "results/diasafety/targets/isaac/tau1.0-m1-seed0.parquet",
        "inputs": ["--base", "results/diasafety/generator_base"],
        "steps": (2, 8),
    },
}


def train_once(setup: dict, config: dict, steps: int, processes: int, src: Path) -> tuple:
    """(wall seconds, steps trained, tokens counted or None) of one train command."""
    train = section_settings(config["train"], "train")
    train.update(max_steps=steps, checkpoint_every=10**6)
    if src == ROOT / "src":
        train["processes"] = processes
    else:  # another checkout's train stage knows only its own keys
        train = {k: v for k, v in train.items() if k not in NEW_KEYS}
    generator = section_settings(config["generator"], "generator")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        cmd = [
            sys.executable,
            "-m",
            "isaac.train",
            "--targets",
            setup["targets"],
            *setup["inputs"],
            "--seed",
            "0",
            "--config",
            json.dumps(train),
            "--generator",
            json.dumps(generator),
            "--threads",
            "2",
            "--checkpoints",
            str(Path(tmp) / "checkpoints"),
            "--out",
            str(out),
        ]
        env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return seconds, len(log), log[-1].get("tokens")


def measure(setup: dict, processes: int, src: Path) -> dict:
    config = merged_config(setup["layers"])
    short, long = (train_once(setup, config, n, processes, src) for n in setup["steps"])
    seconds = long[0] - short[0]
    row = {
        "seconds_per_step": seconds / (long[1] - short[1]),
        "batch_size": config["train"]["batch_size"],
    }
    if long[2] is not None:
        row["tokens_per_s"] = (long[2] - short[2]) / seconds
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generators", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    p.add_argument("--baseline-src", type=Path, help="another checkout's src (the old engine)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "train-cpu.json")
    p.add_argument("--benchmarks-json", type=Path, default=BENCHMARKS_JSON)
    args = p.parse_args()
    load = os.getloadavg()[0]
    result = {"load_average_before": load, "rows": {}}
    for name in args.generators:
        rows = {f"{n}proc": measure(SETUPS[name], n, ROOT / "src") for n in (1, 2)}
        if args.baseline_src:
            rows["baseline_1proc"] = measure(SETUPS[name], 1, args.baseline_src.resolve())
        result["rows"][name] = rows
        print(name, json.dumps(rows), flush=True)
    result["load_average_after"] = os.getloadavg()[0]
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    command = "python bench/train_throughput.py" + (
        " --baseline-src <checkout before the Trainer engine>/src" if args.baseline_src else ""
    )
    for name, rows in result["rows"].items():
        one, two = rows["1proc"], rows["2proc"]
        context = {"batch_size": one["batch_size"], "load_average": load}
        context["path"] = args.benchmarks_json
        record(
            f"train_cpu_{name}_tokens_per_s_1proc",
            one["tokens_per_s"],
            "tokens/s",
            command,
            **context,
        )
        record(
            f"train_cpu_{name}_tokens_per_s_2proc",
            two["tokens_per_s"],
            "tokens/s",
            command,
            baseline=one["tokens_per_s"],
            **context,
        )
        if "baseline_1proc" in rows:
            record(
                f"train_cpu_{name}_seconds_per_step",
                one["seconds_per_step"],
                "seconds per optimizer step (1 process, 2 threads)",
                command,
                baseline=rows["baseline_1proc"]["seconds_per_step"],
                **context,
            )
    write_tables()


if __name__ == "__main__":
    main()
